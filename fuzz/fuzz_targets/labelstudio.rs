//! Any bytes as a Label Studio JSON export: events or problems, never a panic.
#![no_main]

use ethos_annotations::labelstudio::{LabelStudioOptions, parse_labelstudio};
use ethos_annotations::media::Media;
use ethos_annotations::problems::Collector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut media = Media::new(None).expect("no videos root");
    let mut c = Collector::default();
    let opts = LabelStudioOptions {
        fps: None,
        label_config: Some(r#"<View><Video name="v" value="$video" frameRate="15"/></View>"#.into()),
    };
    let events = parse_labelstudio(data, "fuzz".as_ref(), &opts, &mut media, &mut c);
    assert!(events.iter().all(|e| e.duration_s > 0.0 && e.start_s.is_finite()));
});
