//! The protocol decoder, on any bytes after a valid frame header: an
//! error, or a message that encodes back to bytes that decode to it.
#![no_main]

use haven_sync::protocol::{decode, encode, ClientMessage, ServerMessage, PROTOCOL_VERSION};
use serde::{de::DeserializeOwned, Serialize};

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    let mut frame = b"HV".to_vec();
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.extend_from_slice(body);
    round_trips::<ClientMessage>(&frame);
    round_trips::<ServerMessage>(&frame);
    // And the raw bytes, header or not.
    let _ = decode::<ClientMessage>(body);
});

/// Compared as bytes: a message may hold NaN, which is not equal to itself.
fn round_trips<M: Serialize + DeserializeOwned>(frame: &[u8]) {
    if let Ok(message) = decode::<M>(frame) {
        let encoded = encode(&message).expect("a decoded message encodes");
        let again: M = decode(&encoded).expect("an encoded message decodes");
        assert_eq!(encode(&again).unwrap(), encoded);
    }
}
