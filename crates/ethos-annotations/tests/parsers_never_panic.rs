//! Any bytes fed to any parser give events or problems, never a panic: random bytes, and the
//! real fixtures with random bytes spliced in (which reach far deeper into each format).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ethos_annotations::cvat::{CvatOptions, parse_cvat};
use ethos_annotations::labelstudio::{LabelStudioOptions, parse_labelstudio};
use ethos_annotations::media::Media;
use ethos_annotations::problems::Collector;
use ethos_annotations::{Policies, boris, events, relabel};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn policies(k: u8) -> Policies {
    use ethos_annotations::{OnBoundary, OnUnpaired};
    Policies {
        on_unpaired: [OnUnpaired::Error, OnUnpaired::Drop, OnUnpaired::CloseAtEnd][k as usize % 3],
        on_boundary: [OnBoundary::Error, OnBoundary::Split, OnBoundary::Drop][(k / 3) as usize % 3],
        point_seconds: k.is_multiple_of(2).then_some(1.5),
        skip_missing_video: k.is_multiple_of(5),
        skip_invalid: k.is_multiple_of(7),
    }
}

/// Runs every parser on `bytes`; each must return (events, problems or both) without panicking,
/// and whatever it returns must be usable: finite times, positive durations.
fn all_parsers(bytes: &[u8], k: u8) {
    let file = PathBuf::from("fuzz.input");
    let mut media = Media::new(None).unwrap();
    let opts_c = CvatOptions {
        fps: Some(12.5),
        video: Some("v.mp4".into()),
    };
    let opts_l = LabelStudioOptions {
        fps: k.is_multiple_of(2).then_some(25.0),
        label_config: Some(
            r#"<View><Video name="v" value="$video" frameRate="15"/></View>"#.into(),
        ),
    };
    let mut outputs = Vec::new();
    for which in 0..3 {
        let mut c = Collector::new(policies(k));
        let ev = match which {
            0 => boris::parse_any(bytes, &file, &mut media, &mut c),
            1 => parse_cvat(bytes, &file, &opts_c, &mut media, &mut c),
            _ => parse_labelstudio(bytes, &file, &opts_l, &mut media, &mut c),
        };
        outputs.push(ev);
    }
    for ev in outputs.iter().flatten() {
        assert!(
            ev.start_s.is_finite() && ev.duration_s.is_finite(),
            "{ev:?}"
        );
        assert!(ev.duration_s > 0.0, "{ev:?}");
    }
    let mut problems = Vec::new();
    let _ = events::parse_events_csv(bytes, &file, &mut problems);
    let known: HashMap<u32, String> = [(1, "ear".to_string())].into_iter().collect();
    let classes: BTreeSet<String> = ["ear".to_string(), "tail".to_string()]
        .into_iter()
        .collect();
    let _ = relabel::parse_corrections(bytes, &file, &known, &classes, &mut problems);
}

fn splice(base: &[u8], at: usize, cut: usize, insert: &[u8]) -> Vec<u8> {
    let at = at % (base.len() + 1);
    let end = (at + cut).min(base.len());
    let mut v = base[..at].to_vec();
    v.extend_from_slice(insert);
    v.extend_from_slice(&base[end..]);
    v
}

const FIXTURES: [&str; 10] = [
    "boris_v7.boris",
    "boris_v4.boris",
    "boris_v3.boris",
    "boris_v7.boris.gz",
    "boris_v7.aggregated.tsv",
    "boris_v7.aggregated.xlsx",
    "boris_v7.obs2.tabular.csv",
    "cvat_video_tracks.xml",
    "cvat_images_tags.xml",
    "labelstudio_video.json",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), k in any::<u8>()) {
        all_parsers(&bytes, k);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        at in any::<usize>(),
        cut in 0usize..64,
        insert in proptest::collection::vec(any::<u8>(), 0..32),
        k in any::<u8>(),
    ) {
        let base = fixture(FIXTURES[which]);
        all_parsers(&splice(&base, at, cut, &insert), k);
    }

    #[test]
    fn fixtures_with_swapped_tokens_never_panic(
        which in 0..FIXTURES.len(),
        at in any::<usize>(),
        token in prop::sample::select(vec![
            "-1", "1e309", "NaN", "null", "\"\"", "[]", "{}", "99999999999999999999", "\"NA\"",
            "outside=\"1\"", "frame=\"-3\"", "\t", ",", "\"", "true", "0",
        ]),
        k in any::<u8>(),
    ) {
        let base = fixture(FIXTURES[which]);
        all_parsers(&splice(&base, at, token.len() % 5, token.as_bytes()), k);
    }
}

#[test]
fn the_fixtures_themselves_parse() {
    for name in FIXTURES {
        all_parsers(&fixture(name), 1);
    }
}
