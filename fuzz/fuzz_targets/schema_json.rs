//! The schema's JSON parser on any text: an error, or a schema whose own
//! JSON reads back as the same schema.
#![no_main]

use haven_core::Schema;

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(schema) = Schema::from_json(text) {
        let again = Schema::from_json(&schema.to_json()).expect("a schema's own JSON reads back");
        assert_eq!(again, schema);
    }
});
