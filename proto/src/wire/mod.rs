//! Wire formats, one module per framing layer (IPMI v2.0 chapter 13).
//!
//! A datagram is an [`rmcp`] header, then either an ASF message or a
//! [`session`] header (IPMI 1.5 or RMCP+), whose payload is an IPMI
//! [`message`], an [`open_session`] message or a [`rakp`] message. The
//! numeric identifiers all live in [`ids`].

pub mod ids;
pub mod message;
pub mod open_session;
pub mod rakp;
pub mod rmcp;
pub mod session;
