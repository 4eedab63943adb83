//! The loader → trainer adapter: a split's dataset, transform and sampler behind the trainer's
//! [`BatchSource`] interface, and the standard training and evaluation sources of a config.

use std::sync::Arc;

use ethos_core::{Error, Layout};
use ethos_data::chunks::{ChunkLayout, ChunkSampler, ChunkedDataset};
use ethos_data::config::DataConfig;
use ethos_data::dataset::ClipDataset;
use ethos_data::error::DataError;
use ethos_data::loader::{ClipSource, Loader, LoaderOptions};
use ethos_data::sampler::{Sampler, SequentialSampler};
use ethos_data::transforms::ClipTransform;
use ethos_train::trainer::{BatchSource, HostBatch, SourceError};

use crate::Result;

/// A split's loader with its sampler, seen as a [`BatchSource`].
pub struct LoaderSource {
    split: String,
    loader: Loader,
    sampler: Box<dyn Sampler>,
    samples: usize,
    chunk_layout: Option<ChunkLayout>,
}

impl LoaderSource {
    /// A loader over any clip source (a split's events, or the chunks of a frame-level split);
    /// `chunk_layout` describes the samples' frames for the per-frame ensemble of evaluation
    /// sources.
    pub fn new(
        data: &DataConfig,
        split: &str,
        source: Arc<dyn ClipSource>,
        transform: ClipTransform,
        sampler: Box<dyn Sampler>,
        layout: Layout,
        chunk_layout: Option<ChunkLayout>,
    ) -> Self {
        let opts = LoaderOptions {
            batch_size: data.batch_size,
            num_workers: data.num_workers,
            queue_depth: (2 * data.num_workers).max(2),
            seed: data.seed,
            layout,
            num_frames: data.clip_frames(),
            drop_last: false,
        };
        let samples = sampler.epoch_len();
        LoaderSource {
            split: split.to_string(),
            loader: Loader::new(source, transform, opts),
            sampler,
            samples,
            chunk_layout,
        }
    }

    /// This source delivering only `shard`'s part of each epoch (a data-parallel rank):
    /// `Shard::SplitBatches` for training, `Shard::Blocks` for evaluation.
    pub fn with_shard(mut self, shard: ethos_data::shard::Shard) -> Self {
        self.loader = self.loader.with_shard(shard);
        self
    }
}

impl BatchSource for LoaderSource {
    fn split(&self) -> &str {
        &self.split
    }
    fn num_batches(&self) -> usize {
        self.loader.num_batches(self.samples)
    }
    fn num_samples(&self) -> usize {
        self.samples
    }
    fn batches(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = std::result::Result<HostBatch, SourceError>> + '_> {
        Box::new(
            self.loader
                .epoch_from(&*self.sampler, epoch, start)
                .map(|r| {
                    r.map(|b| HostBatch {
                        inputs: b.inputs,
                        shape: b.shape,
                        layout: b.layout,
                        labels: b.labels,
                        event_idx: b.event_idx,
                    })
                    .map_err(|e| Box::new(e) as SourceError)
                }),
        )
    }
    fn chunk_layout(&self) -> Option<&ChunkLayout> {
        self.chunk_layout.as_ref()
    }
}

/// Opens a split in the configured mode (building missing cache entries), with a message that
/// names the split; an empty split is an error.
pub fn open_split(data: &DataConfig, split: &str) -> Result<Arc<ClipDataset>> {
    if data.mode == ethos_data::config::DataMode::Cache {
        crate::output_dir::prepare(&data.cache_dir, "data.cache_dir")?;
    }
    let ds = ClipDataset::open(data, split).map_err(|e| split_error(e, data, split))?;
    if ds.is_empty() {
        let file = data
            .splits
            .get(split)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(Error::bad_input(format!(
            "split `{split}` ({file}) has no events"
        )));
    }
    Ok(Arc::new(ds))
}

/// An error of opening `split`, with the split named in front unless it is about the events CSV:
/// that file holds every split's rows, and its messages name the file and line of the bad row.
pub fn split_error(e: DataError, data: &DataConfig, split: &str) -> Error {
    let about_events_csv = matches!(
        &e,
        DataError::Manifest(m) if m.path() == data.events.as_path()
    );
    if about_events_csv {
        Error::from(e)
    } else {
        Error::from(e).context(format!("opening split `{split}`"))
    }
}

/// An eval-mode source (no augmentation, sequential order) over a split; with
/// `data.chunk_length`, every chunk of every event, with the layout for the per-frame ensemble.
pub fn eval_source(data: &DataConfig, ds: Arc<ClipDataset>, layout: Layout) -> LoaderSource {
    let transform = ClipTransform::eval(data.input_size as usize, data.mean, data.std);
    let split = ds.split().to_string();
    if let Some((length, shift)) = data.chunking() {
        let chunks = Arc::new(ChunkedDataset::new(ds, length, shift));
        let n = ClipSource::len(&*chunks);
        let chunk_layout = chunks.layout();
        return LoaderSource::new(
            data,
            &split,
            chunks,
            transform,
            Box::new(SequentialSampler::new(n)),
            layout,
            Some(chunk_layout),
        );
    }
    let n = ds.len();
    LoaderSource::new(
        data,
        &split,
        ds,
        transform,
        Box::new(SequentialSampler::new(n)),
        layout,
        None,
    )
}

/// The training source: every event per epoch in `sampler`'s order; with `data.chunk_length`,
/// one chunk per event per epoch, chosen from (seed, epoch, position).
pub fn train_source(
    data: &DataConfig,
    ds: Arc<ClipDataset>,
    transform: ClipTransform,
    sampler: Box<dyn Sampler>,
    layout: Layout,
) -> LoaderSource {
    let split = ds.split().to_string();
    match data.chunking() {
        Some((length, shift)) => {
            let chunks = Arc::new(ChunkedDataset::new(ds, length, shift));
            let sampler = Box::new(ChunkSampler::new(sampler, &chunks));
            LoaderSource::new(data, &split, chunks, transform, sampler, layout, None)
        }
        None => LoaderSource::new(data, &split, ds, transform, sampler, layout, None),
    }
}
