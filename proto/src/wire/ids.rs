//! Every numeric identifier that appears on the wire, each defined once.
//!
//! One macro turns a table of `Name = value` into an enum that keeps unknown
//! values (`Unknown(u8)`), so decoding never loses information and encoding
//! always writes back exactly what was read. Values come from IPMI v2.0
//! rev 1.1: RMCP classes (section 13.1.3), authentication types (13.6),
//! payload types (13.27.3), RMCP+ status codes (13.24), algorithm numbers
//! (13.28), privilege levels (6.8), network functions (5.1) and completion
//! codes (5.2).

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this implementation does not name, kept as read.
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                match value {
                    $( $name::$variant => $value, )*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

wire_enum! {
    /// RMCP message class (IPMI v2.0 section 13.1.3, low five bits).
    pub enum RmcpClass {
        /// ASF messages: presence ping and pong.
        Asf = 0x06,
        /// IPMI messages.
        Ipmi = 0x07,
        /// OEM-defined messages.
        Oem = 0x08,
    }
}

wire_enum! {
    /// Authentication type / format byte opening every session header
    /// (IPMI v2.0 section 13.6). `RmcpPlus` selects the IPMI 2.0 header.
    pub enum AuthType {
        /// IPMI 1.5, no authentication code.
        None = 0x00,
        /// IPMI 1.5 MD2.
        Md2 = 0x01,
        /// IPMI 1.5 MD5.
        Md5 = 0x02,
        /// IPMI 1.5 straight password.
        Password = 0x04,
        /// IPMI 1.5 OEM proprietary.
        Oem = 0x05,
        /// IPMI 2.0 RMCP+ session header follows.
        RmcpPlus = 0x06,
    }
}

wire_enum! {
    /// RMCP+ payload type, bits 5..0 of the payload-type byte
    /// (IPMI v2.0 section 13.27.3).
    pub enum PayloadType {
        /// An IPMI message.
        Ipmi = 0x00,
        /// Serial over LAN.
        Sol = 0x01,
        /// OEM explicit: IANA and OEM payload ID follow in the header.
        OemExplicit = 0x02,
        /// RMCP+ Open Session Request.
        OpenSessionRequest = 0x10,
        /// RMCP+ Open Session Response.
        OpenSessionResponse = 0x11,
        /// RAKP Message 1.
        Rakp1 = 0x12,
        /// RAKP Message 2.
        Rakp2 = 0x13,
        /// RAKP Message 3.
        Rakp3 = 0x14,
        /// RAKP Message 4.
        Rakp4 = 0x15,
    }
}

wire_enum! {
    /// RMCP+ and RAKP message status codes (IPMI v2.0 section 13.24).
    pub enum RakpStatus {
        /// No errors.
        Ok = 0x00,
        /// Insufficient resources to create a session.
        InsufficientResources = 0x01,
        /// Invalid session ID.
        InvalidSessionId = 0x02,
        /// Invalid payload type.
        InvalidPayloadType = 0x03,
        /// Invalid authentication algorithm.
        InvalidAuthAlgorithm = 0x04,
        /// Invalid integrity algorithm.
        InvalidIntegrityAlgorithm = 0x05,
        /// No matching authentication payload.
        NoMatchingAuthPayload = 0x06,
        /// No matching integrity payload.
        NoMatchingIntegrityPayload = 0x07,
        /// Inactive session ID.
        InactiveSessionId = 0x08,
        /// Invalid role.
        InvalidRole = 0x09,
        /// Unauthorized role or privilege level requested.
        UnauthorizedRole = 0x0a,
        /// Insufficient resources to create a session at the requested role.
        InsufficientResourcesForRole = 0x0b,
        /// Invalid name length.
        InvalidNameLength = 0x0c,
        /// Unauthorized name.
        UnauthorizedName = 0x0d,
        /// Unauthorized GUID.
        UnauthorizedGuid = 0x0e,
        /// Invalid integrity check value.
        InvalidIntegrityCheckValue = 0x0f,
        /// Invalid confidentiality algorithm.
        InvalidConfidentialityAlgorithm = 0x10,
        /// No cipher suite match with the proposed security algorithms.
        NoCipherSuiteMatch = 0x11,
        /// Illegal or unrecognized parameter.
        IllegalParameter = 0x12,
    }
}

wire_enum! {
    /// Authentication (RAKP) algorithm numbers (IPMI v2.0 section 13.28).
    pub enum AuthAlgorithm {
        /// RAKP-none.
        None = 0x00,
        /// RAKP-HMAC-SHA1.
        HmacSha1 = 0x01,
        /// RAKP-HMAC-MD5.
        HmacMd5 = 0x02,
        /// RAKP-HMAC-SHA256.
        HmacSha256 = 0x03,
    }
}

wire_enum! {
    /// Integrity algorithm numbers (IPMI v2.0 section 13.28.4).
    pub enum IntegrityAlgorithm {
        /// No integrity.
        None = 0x00,
        /// HMAC-SHA1-96.
        HmacSha1_96 = 0x01,
        /// HMAC-MD5-128.
        HmacMd5_128 = 0x02,
        /// MD5-128.
        Md5_128 = 0x03,
        /// HMAC-SHA256-128.
        HmacSha256_128 = 0x04,
    }
}

wire_enum! {
    /// Confidentiality algorithm numbers (IPMI v2.0 section 13.28.5).
    pub enum ConfidentialityAlgorithm {
        /// No encryption.
        None = 0x00,
        /// AES-CBC-128.
        AesCbc128 = 0x01,
        /// xRC4-128.
        XRc4_128 = 0x02,
        /// xRC4-40.
        XRc4_40 = 0x03,
    }
}

/// Session privilege levels (IPMI v2.0 section 6.8), ordered so that a
/// higher level compares greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// Callback: only the commands needed to set up a callback session.
    Callback = 1,
    /// User: read-only access to state.
    User = 2,
    /// Operator: all BMC commands except configuration changes.
    Operator = 3,
    /// Administrator: everything.
    Administrator = 4,
}

impl Privilege {
    /// Parses a level number 1..=4. The OEM level 5 is not offered.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::Callback),
            2 => Some(Self::User),
            3 => Some(Self::Operator),
            4 => Some(Self::Administrator),
            _ => None,
        }
    }

    /// The level number as it appears on the wire.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The name ipmitool uses on its command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Callback => "CALLBACK",
            Self::User => "USER",
            Self::Operator => "OPERATOR",
            Self::Administrator => "ADMINISTRATOR",
        }
    }
}

/// Network function codes of requests (IPMI v2.0 section 5.1, table 5-1).
/// A response uses the request's code plus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetFn(pub u8);

impl NetFn {
    /// Chassis device requests.
    pub const CHASSIS: NetFn = NetFn(0x00);
    /// Bridge requests.
    pub const BRIDGE: NetFn = NetFn(0x02);
    /// Sensor and event requests.
    pub const SENSOR_EVENT: NetFn = NetFn(0x04);
    /// Application requests.
    pub const APP: NetFn = NetFn(0x06);
    /// Firmware requests.
    pub const FIRMWARE: NetFn = NetFn(0x08);
    /// Storage requests.
    pub const STORAGE: NetFn = NetFn(0x0a);
    /// Transport requests.
    pub const TRANSPORT: NetFn = NetFn(0x0c);
    /// Group extension requests (PICMG, VITA, HPM, DCMI).
    pub const GROUP_EXTENSION: NetFn = NetFn(0x2c);
    /// OEM/group requests.
    pub const OEM_GROUP: NetFn = NetFn(0x2e);

    /// The network function of the response to this request.
    pub fn response(self) -> NetFn {
        NetFn(self.0 | 1)
    }

    /// Whether this code is a request (even) network function.
    pub fn is_request(self) -> bool {
        self.0 & 1 == 0
    }
}

/// IPMI completion code (IPMI v2.0 section 5.2). Codes 0x80..=0xBE are
/// command-specific, so this is a plain byte with named constants rather
/// than an enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompletionCode(pub u8);

impl CompletionCode {
    /// Command completed normally.
    pub const OK: Self = Self(0x00);
    /// Get/Set System Boot Options: parameter not supported. Close Session:
    /// session not found is 0x87; Set Session Privilege Level: level not
    /// available for this user.
    pub const PARAMETER_NOT_SUPPORTED: Self = Self(0x80);
    /// Set Session Privilege Level: requested level exceeds the session's
    /// limit. Set System Boot Options: set already in progress.
    pub const LEVEL_EXCEEDS_LIMIT: Self = Self(0x81);
    /// Close Session: invalid session ID in request.
    pub const INVALID_SESSION_ID: Self = Self(0x87);
    /// Close Session: invalid session handle in request.
    pub const INVALID_SESSION_HANDLE: Self = Self(0x88);
    /// Node busy: the command could not be processed for lack of resources.
    pub const NODE_BUSY: Self = Self(0xc0);
    /// Invalid or unsupported command.
    pub const INVALID_COMMAND: Self = Self(0xc1);
    /// Reservation cancelled or invalid reservation ID (IPMI v2.0 table
    /// 5-2): a SEL or SDR reservation that is no longer the current one.
    pub const RESERVATION_INVALID: Self = Self(0xc5);
    /// Request data length invalid.
    pub const REQUEST_LENGTH_INVALID: Self = Self(0xc7);
    /// Parameter out of range.
    pub const PARAMETER_OUT_OF_RANGE: Self = Self(0xc9);
    /// Cannot return number of requested data bytes (IPMI v2.0 table 5-2):
    /// a read asking for more than one reply carries.
    pub const CANNOT_RETURN_REQUESTED_BYTES: Self = Self(0xca);
    /// Requested sensor, data or record not present.
    pub const NOT_PRESENT: Self = Self(0xcb);
    /// Invalid data field in request.
    pub const INVALID_DATA_FIELD: Self = Self(0xcc);
    /// Destination unavailable.
    pub const DESTINATION_UNAVAILABLE: Self = Self(0xd3);
    /// Insufficient privilege level for the command.
    pub const INSUFFICIENT_PRIVILEGE: Self = Self(0xd4);
    /// Command not supported in the present state.
    pub const NOT_SUPPORTED_IN_PRESENT_STATE: Self = Self(0xd5);
    /// Cannot execute command, sub-function has been disabled or is
    /// unavailable (IPMI v2.0 table 5-2).
    pub const SUBFUNCTION_UNAVAILABLE: Self = Self(0xd6);
    /// Unspecified error.
    pub const UNSPECIFIED: Self = Self(0xff);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(PayloadType::from(v)), v);
            assert_eq!(u8::from(RakpStatus::from(v)), v);
            assert_eq!(u8::from(AuthAlgorithm::from(v)), v);
            assert_eq!(u8::from(IntegrityAlgorithm::from(v)), v);
            assert_eq!(u8::from(ConfidentialityAlgorithm::from(v)), v);
            assert_eq!(u8::from(AuthType::from(v)), v);
            assert_eq!(u8::from(RmcpClass::from(v)), v);
        }
    }

    #[test]
    fn privilege_orders_by_level() {
        assert!(Privilege::Administrator > Privilege::Operator);
        assert!(Privilege::Operator > Privilege::User);
        assert_eq!(Privilege::from_level(5), None);
        assert_eq!(Privilege::from_level(0), None);
        for p in [
            Privilege::Callback,
            Privilege::User,
            Privilege::Operator,
            Privilege::Administrator,
        ] {
            assert_eq!(Privilege::from_level(p.level()), Some(p));
        }
    }
}
