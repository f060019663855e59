//! RMCP+ sessions: the RAKP handshake states, the established session with
//! its sequence window and reply cache, and the table that holds them
//! (IPMI v2.0 sections 6.12 and 13.17-13.23).

pub mod established;
pub mod handshake;
pub mod reply_cache;
pub mod table;
pub mod window;
