//! The SSE parser (`net/sse.rs`) on what a server's event stream might carry.
//!
//! Input: a flags byte (the low two bits pick the event size limit), a split seed, then
//! the stream. Checked on every input: each event has data, within the limit, with no CR
//! and an event type without line ends; an id kept for `Last-Event-ID` is short printable
//! ASCII; the parser never yields more data bytes than it was fed; errors are sticky;
//! feeding the stream in the seed's pieces gives what feeding it whole gives (a cut may
//! only find an over-long partial line sooner); and after `reset_stream` the same bytes
//! give the same events again.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nightcrier::net::sse::{SseError, SseEvent, SseParser, MAX_ID_BYTES};
use nightcrier_fuzz::{pieces, Framed};

#[derive(Debug, PartialEq)]
struct Run {
    events: Vec<SseEvent>,
    result: Result<(), SseError>,
    comments: u64,
    discarded: u64,
    ended: u64,
    last_id: Option<String>,
    retry: Option<Duration>,
}

fn check_event(event: &SseEvent, limit: usize) {
    assert!(!event.data.is_empty(), "event without data dispatched");
    assert!(
        event.data.len() <= limit,
        "{} data bytes, limit {limit}",
        event.data.len()
    );
    assert!(!event.data.contains('\r'), "CR in data");
    assert!(!event.event.is_empty(), "empty event type");
    assert!(
        !event.event.contains(['\r', '\n']),
        "line end in event type"
    );
    if let Some(id) = &event.id {
        assert!(
            !id.is_empty() && id.len() <= MAX_ID_BYTES,
            "id of {} bytes",
            id.len()
        );
        assert!(
            id.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "id {id:?} not printable"
        );
    }
}

fn feed_all(parser: &mut SseParser, limit: usize, feeds: &[&[u8]]) -> Run {
    let mut events = Vec::new();
    let mut result = Ok(());
    let mut fed = 0usize;
    let mut data_bytes = 0usize;
    let mut discarded = 0;
    let mut ended = parser.events_ended();
    for input in feeds {
        let before = events.len();
        result = parser.feed(input, &mut events);
        fed += input.len();
        for event in &events[before..] {
            check_event(event, limit);
            data_bytes += event.data.len();
        }
        assert!(data_bytes <= fed, "{data_bytes} data bytes from {fed} fed");
        discarded += parser.take_discarded();
        assert!(parser.events_ended() >= ended, "ended count went back");
        ended = parser.events_ended();
        if result.is_err() {
            break;
        }
    }
    if let Err(error) = result {
        let before = events.len();
        assert_eq!(
            parser.feed(b"data: x\n\n", &mut events),
            Err(error),
            "error not sticky"
        );
        assert_eq!(events.len(), before, "events after an error");
    }
    if let Some(id) = parser.last_event_id() {
        assert!(
            !id.is_empty() && id.len() <= MAX_ID_BYTES,
            "last id of {} bytes",
            id.len()
        );
    }
    Run {
        events,
        result,
        comments: parser.comments_seen(),
        discarded,
        ended,
        last_id: parser.last_event_id().map(str::to_owned),
        retry: parser.retry(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Framed::parse(data) else {
        return;
    };
    let limit = match input.flags & 3 {
        0 => 1 << 20,
        1 => 64,
        2 => 300,
        _ => 4096,
    };

    let whole = feed_all(&mut SseParser::new(limit), limit, &[input.wire]);
    let mut parser = SseParser::new(limit);
    let split = feed_all(&mut parser, limit, &pieces(input.wire, input.seed));
    match (&whole.result, &split.result) {
        (Ok(()), Ok(())) => assert_eq!(whole, split, "split changed the outcome"),
        // Only an unterminated line is measured before its end arrives: a cut may find a
        // line (a long comment) too large sooner, after the same events.
        (_, Err(SseError::EventTooLarge { .. })) => {
            assert!(
                whole.events.starts_with(&split.events),
                "split events {:?} are not a prefix of {:?}",
                split.events,
                whole.events
            );
        }
        _ => panic!("whole {:?}, split {:?}", whole.result, split.result),
    }

    // A new connection: the same bytes give the same events (ids carry over).
    parser.reset_stream();
    let again = feed_all(&mut parser, limit, &[input.wire]);
    let shape = |run: &Run| -> Vec<(String, String)> {
        run.events
            .iter()
            .map(|e| (e.event.to_string(), e.data.clone()))
            .collect()
    };
    assert_eq!(shape(&again), shape(&whole), "reset_stream kept state");
    assert_eq!(again.result, whole.result);
});
