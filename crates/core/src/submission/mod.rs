//! The SMTP submission server's protocol, without IO: commands ([`command`]), replies ([`reply`]), the
//! session's state machine and policy checks ([`session`]), reading the data safely ([`data`]) and the SASL
//! PLAIN and LOGIN payloads ([`sasl`]).

pub mod command;
pub mod data;
pub mod reply;
pub mod rewrite;
pub mod sasl;
pub mod session;
