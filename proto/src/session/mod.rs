//! RMCP+ sessions: the RAKP handshake states, the established session with
//! its sequence window and reply cache, the table that holds them and the
//! budget all tables share (IPMI v2.0 sections 6.12 and 13.17-13.23), and
//! the per-source budget for replies outside a session.

pub mod budget;
pub mod established;
pub mod handshake;
pub mod reply_cache;
pub mod sessionless;
pub mod table;
pub mod window;
