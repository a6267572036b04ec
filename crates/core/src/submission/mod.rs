//! The SMTP submission server's protocol, without IO: commands ([`command`]), replies ([`reply`]), the
//! session's state machine and policy checks ([`session`]), reading the data safely ([`data`]) and the SASL
//! PLAIN and LOGIN payloads ([`sasl`]), the sender policies' decision ([`policy`]) and their header changes
//! ([`rewrite`]).

pub mod command;
pub mod data;
pub mod policy;
pub mod reply;
pub mod rewrite;
pub mod sasl;
pub mod session;
