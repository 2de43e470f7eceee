//! The date and duration parsers the server uses: never a panic; a date that
//! parses formats (to milliseconds) to text that parses and formats to the
//! same text, and a duration that parses formats back to itself.
#![no_main]

use agx_server::time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(at) = time::parse(text) {
        let shown = time::format(at);
        let again = time::parse(&shown).expect("our own format parses");
        assert_eq!(time::format(again), shown, "format and parse round-trip");
    }
    if let Ok(d) = humantime::parse_duration(text) {
        assert_eq!(humantime::parse_duration(&humantime::format_duration(d).to_string()).ok(), Some(d));
    }
});
