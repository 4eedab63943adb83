//! Any bytes as a BORIS project or export: events or problems, never a panic.
#![no_main]

use ethos_annotations::Policies;
use ethos_annotations::media::Media;
use ethos_annotations::problems::Collector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut media = Media::new(None).expect("no videos root");
    let mut c = Collector::new(Policies {
        point_seconds: Some(1.0),
        ..Policies::default()
    });
    let events = ethos_annotations::boris::parse_any(data, "fuzz".as_ref(), &mut media, &mut c);
    assert!(events.iter().all(|e| e.duration_s > 0.0 && e.start_s.is_finite()));
});
