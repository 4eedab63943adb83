//! Any bytes as a CVAT XML export: events or problems, never a panic.
#![no_main]

use ethos_annotations::cvat::{CvatOptions, parse_cvat};
use ethos_annotations::media::Media;
use ethos_annotations::problems::Collector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut media = Media::new(None).expect("no videos root");
    let mut c = Collector::default();
    let opts = CvatOptions {
        fps: Some(25.0),
        video: Some("v.mp4".into()),
    };
    let events = parse_cvat(data, "fuzz".as_ref(), &opts, &mut media, &mut c);
    assert!(events.iter().all(|e| e.duration_s > 0.0 && e.start_s.is_finite()));
});
