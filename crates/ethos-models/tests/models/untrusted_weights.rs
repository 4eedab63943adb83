//! Property tests of the weight readers on untrusted bytes: the safe pickle reader (`.pth`) and
//! the safetensors header checks give tensors or an error for any input, never a panic, an abort
//! or a stack overflow, and never allocate much more than the input's size (measured with a
//! counting allocator around each read).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ethos_models::pth::read_pth_bytes;
use ethos_models::weights::read_safetensors_bytes;
use proptest::prelude::*;

/// The system allocator, counting live and peak bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Reads are measured one at a time (the counters are process-wide).
static MEASURE: Mutex<()> = Mutex::new(());

/// Runs `f` and returns the peak of bytes allocated while it ran, beyond what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _one = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// What a reader may allocate for `n` input bytes: proportional to the input, plus a constant.
fn budget(n: usize) -> usize {
    (64 << 20) + 512 * n
}

/// Pickle opcodes the reader knows (and a few it refuses), with valid-looking arguments.
fn opcode() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![b'(']),
        Just(vec![b']']),
        Just(vec![b'}']),
        Just(vec![b')']),
        Just(vec![b'N']),
        Just(vec![b'a']),
        Just(vec![b'e']),
        Just(vec![b's']),
        Just(vec![b'u']),
        Just(vec![b'l']),
        Just(vec![b't']),
        Just(vec![b'd']),
        Just(vec![0x85]),
        Just(vec![0x86]),
        Just(vec![0x87]),
        Just(vec![b'0']),
        Just(vec![b'1']),
        Just(vec![b'2']),
        Just(vec![b'R']),
        Just(vec![b'b']),
        Just(vec![b'Q']),
        Just(vec![0x94]),
        (0u8..8).prop_map(|i| vec![b'q', i]),
        (0u8..8).prop_map(|i| vec![b'h', i]),
        any::<u8>().prop_map(|v| vec![b'K', v]),
        any::<i32>().prop_map(|v| {
            let mut o = vec![b'J'];
            o.extend_from_slice(&v.to_le_bytes());
            o
        }),
        "[a-z_.]{0,12}".prop_map(|s| {
            let mut o = vec![0x8c, s.len() as u8];
            o.extend_from_slice(s.as_bytes());
            o
        }),
        Just(b"ccollections\nOrderedDict\n".to_vec()),
        Just(b"ctorch._utils\n_rebuild_tensor_v2\n".to_vec()),
        Just(b"ctorch\nFloatStorage\n".to_vec()),
        Just(b"cos\nsystem\n".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pickle_reader_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let n = bytes.len();
        let (_, peak) = peak_during(|| read_pth_bytes(Path::new("any.pth"), &bytes));
        prop_assert!(peak <= budget(n), "{} bytes allocated for {} input bytes", peak, n);
        // The same bytes behind a pickle protocol header reach the opcode interpreter.
        let mut p = vec![0x80, 2];
        p.extend_from_slice(&bytes);
        let (_, peak) = peak_during(|| read_pth_bytes(Path::new("any.pth"), &p));
        prop_assert!(peak <= budget(p.len()));
    }

    #[test]
    fn pickle_reader_on_opcode_sequences(ops in proptest::collection::vec(opcode(), 0..400)) {
        let mut p = vec![0x80, 2];
        for o in &ops {
            p.extend_from_slice(o);
        }
        p.push(b'.');
        let n = p.len();
        let (r, peak) = peak_during(|| read_pth_bytes(Path::new("ops.pth"), &p));
        prop_assert!(peak <= budget(n), "{} bytes allocated for {} input bytes", peak, n);
        if let Err(e) = r {
            prop_assert!(e.to_string().contains("ops.pth"), "{}", e);
        }
    }

    #[test]
    fn safetensors_reader_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let n = bytes.len();
        let (_, peak) = peak_during(|| read_safetensors_bytes(Path::new("any.safetensors"), &bytes));
        prop_assert!(peak <= budget(n));
    }

    #[test]
    fn safetensors_reader_on_hostile_headers(
        dtype in prop_oneof![Just("F32"), Just("F16"), Just("I64"), Just("U8"), Just("BOOL"), Just("XX")],
        shape in proptest::collection::vec(0u64..u64::MAX, 0..5),
        small_shape in proptest::collection::vec(0u64..5, 0..4),
        begin in 0u64..64,
        len in prop_oneof![0u64..64, Just(u64::MAX / 2), Just(u64::MAX)],
        data in proptest::collection::vec(any::<u8>(), 0..128),
        huge in any::<bool>(),
    ) {
        let shape = if huge { shape } else { small_shape };
        let header = format!(
            "{{\"t\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{begin},{}]}}}}",
            begin.saturating_add(len)
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        let n = bytes.len();
        let (r, peak) = peak_during(|| read_safetensors_bytes(Path::new("h.safetensors"), &bytes));
        prop_assert!(peak <= budget(n), "{} bytes allocated for {} input bytes", peak, n);
        if let Ok(t) = r {
            // Only a header that describes exactly the data present is accepted.
            let elems: i64 = t.iter().map(|(_, t)| t.numel() as i64).sum();
            prop_assert!(elems as usize <= data.len());
        }
    }
}

#[test]
fn a_header_claiming_a_huge_length_is_refused_without_allocating_it() {
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let (r, peak) = peak_during(|| read_safetensors_bytes(Path::new("h.safetensors"), &bytes));
    assert!(r.is_err());
    assert!(peak < 1 << 20, "{peak}");
}
