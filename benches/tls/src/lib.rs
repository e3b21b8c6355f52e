//! Empty: everything is in benches/handshake.rs.
