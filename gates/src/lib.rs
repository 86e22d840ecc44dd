//! Empty: the gates are test targets under `tests/`.
