//! Every `mio::Token` and DNS query key the event loop hands out, in one place, and how to
//! read one back. Each kind carries a generation, so an event or answer for something that
//! has since been replaced finds nothing instead of its successor.
//!
//! Tokens (64-bit `usize`), told apart by the low byte:
//!
//! | kind       | bits 63..32 | bits 31..8                 | bits 7..0                          |
//! |------------|-------------|----------------------------|------------------------------------|
//! | connection | slot index  | slot generation (24 bits)  | `0x80 \| client generation << 1 \| channel` |
//! | stage      | id (56 bits, bits 63..8)                 || `0x02`                             |
//! | waker      | all ones                                 || `0xff`                             |
//! | signals    | all ones but bit 0                       || `0xfe`                             |
//!
//! A connection token names the cluster's slot (its generation changes when the slot is
//! reused) and one HTTP client of one of its two channels (the client generation, 6 bits,
//! changes with every reconnect). A stage token's id is a sequence number the stage never
//! reuses (one per Slack delivery): the id is its own generation. The waker and the signals
//! are matched before anything else (their low bytes would otherwise read as connections).
//!
//! DNS query keys (`u64`): a connection's is `slot index << 32 | slot generation` (bit 63
//! clear: there are never 2^31 slots); a stage's is `1 << 63 | id`.

use mio::Token;

pub const WAKER: Token = Token(usize::MAX);
pub const SIGNALS: Token = Token(usize::MAX - 1);

/// The two HTTP connections of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Control,
    Stream,
}

/// The low bits of an HTTP client's generation that its token carries.
pub const CLIENT_GENERATION_MASK: u32 = 0x3f;
const CONNECTION_CODE: usize = 0x80;
const STAGE_CODE: usize = 0x02;
const SLOT_GENERATION_BITS: u32 = 24;
const SLOT_GENERATION_MASK: u32 = (1 << SLOT_GENERATION_BITS) - 1;
const STAGE_DNS_BIT: u64 = 1 << 63;

/// What a connection's socket token names: a slot, one of its two channels, and which
/// client of that channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionToken {
    pub index: u32,
    /// Truncated to 24 bits: compare with [`slot_generation_matches`].
    pub slot_generation: u32,
    pub channel: Channel,
    /// Truncated to 6 bits ([`CLIENT_GENERATION_MASK`]).
    pub client_generation: u32,
}

/// Whom a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Waker,
    Signals,
    Connection(ConnectionToken),
    Stage(u64),
    /// Not a token this loop hands out.
    Unknown,
}

/// Whom a DNS answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsOwner {
    Connection { index: u32, generation: u32 },
    Stage(u64),
}

pub fn connection(
    index: u32,
    slot_generation: u32,
    channel: Channel,
    client_generation: u32,
) -> Token {
    let channel_bit = match channel {
        Channel::Control => 0,
        Channel::Stream => 1,
    };
    let code = CONNECTION_CODE
        | channel_bit
        | (((client_generation & CLIENT_GENERATION_MASK) as usize) << 1);
    Token(
        ((index as usize) << 32)
            | (((slot_generation & SLOT_GENERATION_MASK) as usize) << 8)
            | code,
    )
}

/// A stage token; `id` must fit in 56 bits (the stage counts from 1).
pub fn stage(id: u64) -> Token {
    Token(((id as usize) << 8) | STAGE_CODE)
}

pub fn owner(token: Token) -> Owner {
    if token == WAKER {
        return Owner::Waker;
    }
    if token == SIGNALS {
        return Owner::Signals;
    }
    let raw = token.0;
    let code = raw & 0xff;
    if code & CONNECTION_CODE != 0 {
        return Owner::Connection(ConnectionToken {
            index: (raw >> 32) as u32,
            slot_generation: ((raw >> 8) as u32) & SLOT_GENERATION_MASK,
            channel: if code & 1 == 0 {
                Channel::Control
            } else {
                Channel::Stream
            },
            client_generation: ((code >> 1) as u32) & CLIENT_GENERATION_MASK,
        });
    }
    if code == STAGE_CODE {
        return Owner::Stage((raw >> 8) as u64);
    }
    Owner::Unknown
}

/// Whether a slot's full generation is the one a token carried (truncated).
pub fn slot_generation_matches(generation: u32, truncated: u32) -> bool {
    generation & SLOT_GENERATION_MASK == truncated
}

pub fn connection_dns_key(index: u32, generation: u32) -> u64 {
    (u64::from(index & 0x7fff_ffff) << 32) | u64::from(generation)
}

pub fn stage_dns_key(id: u64) -> u64 {
    STAGE_DNS_BIT | id
}

pub fn dns_owner(key: u64) -> DnsOwner {
    if key & STAGE_DNS_BIT != 0 {
        return DnsOwner::Stage(key & !STAGE_DNS_BIT);
    }
    DnsOwner::Connection {
        index: (key >> 32) as u32,
        generation: key as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself() {
        for generation in [0, 1, 63, 64, 1000] {
            for channel in [Channel::Control, Channel::Stream] {
                let token = connection(7, 0x0123_4567, channel, generation);
                let Owner::Connection(parts) = owner(token) else {
                    panic!("{token:?} is not a connection's");
                };
                assert_eq!(parts.index, 7);
                assert!(slot_generation_matches(0x0123_4567, parts.slot_generation));
                assert!(!slot_generation_matches(0x0123_4568, parts.slot_generation));
                assert_eq!(parts.channel, channel);
                assert_eq!(parts.client_generation, generation & CLIENT_GENERATION_MASK);
            }
        }
        assert_eq!(owner(stage(5)), Owner::Stage(5));
        assert_eq!(owner(stage((1 << 56) - 1)), Owner::Stage((1 << 56) - 1));
        assert_eq!(owner(WAKER), Owner::Waker);
        assert_eq!(owner(SIGNALS), Owner::Signals);
        assert_eq!(owner(Token(0x01)), Owner::Unknown);
    }

    #[test]
    fn dns_keys_of_connections_and_the_stage_never_collide() {
        let key = connection_dns_key(u32::MAX, u32::MAX);
        assert_eq!(
            dns_owner(key),
            DnsOwner::Connection {
                index: 0x7fff_ffff,
                generation: u32::MAX
            }
        );
        assert_eq!(dns_owner(stage_dns_key(9)), DnsOwner::Stage(9));
        assert_eq!(
            dns_owner(connection_dns_key(3, 4)),
            DnsOwner::Connection {
                index: 3,
                generation: 4
            }
        );
    }
}
