//! `cargo xtask list`

use crate::gates::GATES;

pub fn run() -> anyhow::Result<u8> {
    for gate in GATES {
        println!("{:<18} {}", gate.name, gate.summary);
    }
    Ok(crate::exit::OK)
}
