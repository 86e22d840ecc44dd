//! `cargo xtask list`

use crate::gates::GATES;

pub fn run() -> anyhow::Result<u8> {
    for gate in GATES {
        let status = if gate.implemented {
            ""
        } else {
            " (not implemented yet)"
        };
        println!("{:<18} {}{status}", gate.name, gate.summary);
    }
    Ok(crate::exit::OK)
}
