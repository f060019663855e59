//! What novabmc keeps in a Nova server's metadata, and how: the schema
//! every part that reads or writes it shares (the workers write, the
//! resolver and poller read, `check` reports).
//!
//! - [`BOOT_KEY`]: the node's boot options, so a restart or a second BMC
//!   instance loses nothing ([`encode_boot`]: `v1:` and the hex of
//!   IPMI's parameters 0, 3, 4 and 5, verbatim);
//! - [`OWNER_KEY`]: the novabmc instance (host and state directory) that
//!   serves the server, so two instances driving one server are noticed;
//! - [`PXE_FIRST_KEY`]: OVB's patched-Nova network boot switch, for
//!   `network_boot = "metadata"`;
//! - [`ADDRESS_KEY`]: the BMC address discovery gave a server from its
//!   pool ([`crate::discovery`]), so a restart or a second look gives the
//!   same one (the address as text, `192.0.2.10` or `2001:db8::10`).

use novabmc_proto::BootOptions;

/// Metadata key holding a node's boot options.
pub const BOOT_KEY: &str = "novabmc_boot";
/// Metadata key naming the novabmc instance that serves the server.
pub const OWNER_KEY: &str = "novabmc_owner";
/// Metadata key OVB's Nova patch reads to boot from the network first.
pub const PXE_FIRST_KEY: &str = "libvirt:pxe-first";
/// Metadata key holding the BMC address a discovered server was given.
pub const ADDRESS_KEY: &str = "novabmc_bmc_address";

/// Encodes boot options for the server's metadata.
pub fn encode_boot(o: &BootOptions) -> String {
    format!("v1:{}", hex::encode(o.to_bytes()))
}

/// Decodes what [`encode_boot`] wrote.
pub fn decode_boot(s: &str) -> Option<BootOptions> {
    let bytes = hex::decode(s.strip_prefix("v1:")?).ok()?;
    BootOptions::from_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_options_round_trip_through_metadata() {
        let mut b = BootOptions::new(true);
        let (w, inv) =
            novabmc_proto::BootParameterWrite::parse(&[5, 0xa0, 0x04, 0, 0, 0]).expect("write");
        b.apply(w, inv);
        let text = encode_boot(&b);
        assert!(text.starts_with("v1:"));
        assert_eq!(decode_boot(&text), Some(b));
        assert_eq!(decode_boot("v2:00"), None);
        assert_eq!(decode_boot("v1:zz"), None);
    }
}
