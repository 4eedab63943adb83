//! Frame-level (FERAL-style) sampling: an event's window on the `fps` grid is cut into chunks of
//! `L = data.chunk_length` frames with stride `S = data.chunk_shift`; every frame carries the
//! event's label.
//!
//! - [`chunk_starts`]: `0, S, 2S, ...` while a chunk fits, plus a last chunk aligned to the window's
//!   end, so every frame is covered; a window shorter than `L` frames is one chunk (the cache then
//!   spreads the `L` samples over the window, as for clip-level clips).
//! - [`ChunkedDataset`]: every chunk of every event as one [`ClipSource`] sample (evaluation visits
//!   them all; [`ChunkLayout`] says which frames of which event each sample holds).
//! - [`ChunkSampler`]: training takes one chunk per event per epoch, the event order coming from an
//!   event-level sampler and the chunk from `(seed, epoch, position)`.

use std::ops::Range;
use std::sync::Arc;

use ethos_video::Clip;
use rand::Rng;

use crate::dataset::{ClipDataset, LoadedClip};
use crate::error::DataError;
use crate::loader::ClipSource;
use crate::rng::{Stream, rng_for};
use crate::sampler::Sampler;

/// Chunk start frames for a window of `frames` grid frames: every `shift` frames while a chunk of
/// `length` fits, plus one ending at the last frame; `[0]` when the window is at most one chunk.
pub fn chunk_starts(frames: usize, length: usize, shift: usize) -> Vec<usize> {
    if frames <= length || length == 0 {
        return vec![0];
    }
    let last = frames - length;
    let mut starts: Vec<usize> = (0..=last).step_by(shift.max(1)).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
}

/// One sample of a [`ChunkedDataset`]: chunk `start..start + L` of the grid of event `item`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// Position of the event in the dataset.
    pub item: usize,
    /// First grid frame of the chunk.
    pub start: usize,
}

/// Which frames each sample of an evaluation pass holds, for the per-frame ensemble: sample `i`
/// covers frames `starts[i] .. starts[i] + chunk_length` of group (event) `groups[i]`, whose window
/// has `group_frames[groups[i]]` frames (`max(L, ...)`, so a chunk never overhangs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkLayout {
    /// Frames per chunk `L`.
    pub chunk_length: usize,
    /// Event position (group) of each sample.
    pub groups: Vec<usize>,
    /// First frame of each sample in its group's window.
    pub starts: Vec<usize>,
    /// Window length in frames per group.
    pub group_frames: Vec<usize>,
}

/// Every chunk of every event of a [`ClipDataset`] as one sample (event order, then chunk order).
#[derive(Debug)]
pub struct ChunkedDataset {
    dataset: Arc<ClipDataset>,
    length: usize,
    chunks: Vec<ChunkRef>,
    ranges: Vec<Range<usize>>,
    grid: Vec<usize>,
}

impl ChunkedDataset {
    /// The chunks of `dataset` (opened with `data.chunk_length = length`) with stride `shift`.
    pub fn new(dataset: Arc<ClipDataset>, length: usize, shift: usize) -> Self {
        let mut chunks = Vec::new();
        let mut ranges = Vec::with_capacity(dataset.len());
        let mut grid = Vec::with_capacity(dataset.len());
        for item in 0..dataset.len() {
            let frames = dataset.grid_frames(item);
            let first = chunks.len();
            chunks.extend(
                chunk_starts(frames, length, shift)
                    .into_iter()
                    .map(|start| ChunkRef { item, start }),
            );
            ranges.push(first..chunks.len());
            grid.push(frames);
        }
        Self {
            dataset,
            length,
            chunks,
            ranges,
            grid,
        }
    }

    /// The events' dataset.
    pub fn dataset(&self) -> &Arc<ClipDataset> {
        &self.dataset
    }

    /// Every chunk, event by event.
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The sample indices of each event's chunks.
    pub fn event_ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Which frames every sample holds, in sample order (see [`ChunkLayout`]).
    pub fn layout(&self) -> ChunkLayout {
        ChunkLayout {
            chunk_length: self.length,
            groups: self.chunks.iter().map(|c| c.item).collect(),
            starts: self.chunks.iter().map(|c| c.start).collect(),
            group_frames: self.grid.clone(),
        }
    }
}

impl ClipSource for ChunkedDataset {
    fn len(&self) -> usize {
        self.chunks.len()
    }
    fn label(&self, index: usize) -> usize {
        self.dataset.items()[self.chunks[index].item]
            .event
            .class_index
    }
    fn event_idx(&self, index: usize) -> u32 {
        self.dataset.items()[self.chunks[index].item]
            .event
            .event_idx
    }
    fn max_offset(&self) -> usize {
        self.dataset.margin()
    }
    fn load(&self, index: usize, offset: i32) -> Result<Clip, DataError> {
        let c = self.chunks[index];
        self.dataset.load_chunk(c.item, c.start, offset)
    }
    fn load_frames(&self, index: usize, offset: i32) -> Result<LoadedClip, DataError> {
        let c = self.chunks[index];
        self.dataset.load_chunk_frames(c.item, c.start, offset)
    }
}

/// One chunk per event per epoch: `events` orders the events (shuffle, balanced, ...); the chunk
/// of the event at position `p` is drawn uniformly from its chunks with the RNG of
/// `(seed, epoch, p)`, so epochs see different chunks and a resume sees the same ones.
pub struct ChunkSampler {
    events: Box<dyn Sampler>,
    ranges: Vec<Range<usize>>,
}

impl ChunkSampler {
    /// A sampler over the chunks of `chunks` driven by the event-level sampler `events`.
    pub fn new(events: Box<dyn Sampler>, chunks: &ChunkedDataset) -> Self {
        Self {
            events,
            ranges: chunks.event_ranges().to_vec(),
        }
    }
}

impl Sampler for ChunkSampler {
    fn epoch_order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        self.events
            .epoch_order(seed, epoch)
            .into_iter()
            .enumerate()
            .map(|(pos, event)| {
                let r = &self.ranges[event];
                let mut rng = rng_for(seed, epoch, pos as u64, Stream::Chunk);
                r.start + rng.random_range(0..r.len().max(1))
            })
            .collect()
    }
    fn epoch_len(&self) -> usize {
        self.events.epoch_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::SequentialSampler;

    #[test]
    fn chunks_cover_every_frame() {
        assert_eq!(chunk_starts(10, 4, 2), vec![0, 2, 4, 6]);
        assert_eq!(chunk_starts(11, 4, 2), vec![0, 2, 4, 6, 7]);
        assert_eq!(chunk_starts(4, 4, 2), vec![0]);
        assert_eq!(chunk_starts(3, 4, 2), vec![0]);
        assert_eq!(chunk_starts(9, 4, 4), vec![0, 4, 5]);
        for frames in 1..40 {
            for (l, s) in [(4, 1), (4, 2), (4, 3), (4, 4), (8, 3)] {
                let starts = chunk_starts(frames, l, s);
                let mut covered = vec![false; frames.max(l)];
                for &st in &starts {
                    assert!(st + l <= frames.max(l));
                    covered[st..st + l].iter_mut().for_each(|c| *c = true);
                }
                assert!(covered.iter().all(|&c| c), "{frames} {l} {s}");
            }
        }
    }

    #[test]
    fn chunk_sampler_takes_one_chunk_per_event_deterministically() {
        let ranges = vec![0..3, 3..4, 4..9];
        let s = ChunkSampler {
            events: Box::new(SequentialSampler::new(3)),
            ranges: ranges.clone(),
        };
        let a = s.epoch_order(7, 1);
        assert_eq!(a, s.epoch_order(7, 1));
        assert_eq!(a.len(), 3);
        for (ev, &c) in a.iter().enumerate() {
            assert!(ranges[ev].contains(&c));
        }
        // Over many epochs every chunk of event 2 is drawn.
        let seen: std::collections::HashSet<usize> =
            (0..200).map(|e| s.epoch_order(7, e)[2]).collect();
        assert_eq!(seen.len(), 5);
    }
}
