//! `ethos weights convert|fetch|inspect`: weight files between formats, official downloads, listings.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use ethos_pipeline::weights;

/// Weight files: convert to safetensors, download official checkpoints, list tensors.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: WeightsCommand,
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Converts any readable weight file (safetensors, sharded index, PyTorch .pth/.pt) to safetensors.
    Convert(ConvertArgs),
    /// Downloads official torchvision weights (mvit_v2_s, r3d_18) with resume and SHA-256 check.
    Fetch(FetchArgs),
    /// Lists the tensors of a weight file: key, dtype, shape (JSON to stdout, table to stderr).
    Inspect(InspectArgs),
}

/// Arguments of `ethos weights convert`.
#[derive(ClapArgs)]
struct ConvertArgs {
    /// Input weights (.safetensors, model.safetensors.index.json, folder, .pth/.pt/.bin).
    input: PathBuf,
    /// Output .safetensors file (written atomically).
    output: PathBuf,
    /// Keep half/bfloat16 tensors as they are instead of converting them to float32.
    #[arg(long)]
    keep_dtypes: bool,
}

/// Arguments of `ethos weights fetch`.
#[derive(ClapArgs)]
struct FetchArgs {
    /// Model name: mvit_v2_s or r3d_18 (torchvision Kinetics-400 weights).
    name: String,
    /// Cache folder (default: $XDG_CACHE_HOME/ethos/weights or ~/.cache/ethos/weights).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Download from this URL instead of the official one (a mirror); the file name is kept.
    #[arg(long)]
    url: Option<String>,
    /// Expected SHA-256 (full hex or a prefix of at least 8 hex digits). Default: the 8-hex suffix of
    /// the torchvision file name (`name-<sha256 prefix>.pth`).
    #[arg(long)]
    sha256: Option<String>,
}

/// Arguments of `ethos weights inspect`.
#[derive(ClapArgs)]
struct InspectArgs {
    /// Weight file or folder.
    file: PathBuf,
}

/// Runs `ethos weights ...`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        WeightsCommand::Convert(a) => {
            let r = weights::convert(&a.input, &a.output, a.keep_dtypes)?;
            crate::output::line(format!(
                "wrote {} tensors ({} elements) to {}",
                r.tensors,
                r.elements,
                r.output.display()
            ));
            crate::output::stdout(&serde_json::to_string(&r)?)
        }
        WeightsCommand::Fetch(a) => {
            let bar = crate::progress::Bar::new("download", "bytes");
            let r = weights::fetch(
                &a.name,
                a.cache_dir.as_deref(),
                a.url.as_deref(),
                a.sha256.as_deref(),
                &bar,
            );
            bar.finish();
            let r = r?;
            let how = if r.cached {
                "already in the cache"
            } else {
                "downloaded to"
            };
            crate::output::line(format!("{} {how} {}", r.name, r.path.display()));
            crate::output::stdout(&serde_json::to_string(&r)?)
        }
        WeightsCommand::Inspect(a) => {
            let rows = weights::inspect(&a.file)?;
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
            let mut table = vec![format!("{:<width$}  {:<8}  shape", "key", "dtype")];
            let mut elements = 0i64;
            for r in &rows {
                table.push(format!("{:<width$}  {:<8}  {:?}", r.key, r.dtype, r.shape));
                elements += r.shape.iter().product::<i64>();
            }
            table.push(format!("{} tensors, {elements} elements", rows.len()));
            crate::output::lines(&table);
            let out = serde_json::json!({
                "file": a.file, "count": rows.len(), "elements": elements, "tensors": rows,
            });
            crate::output::stdout(&out.to_string())
        }
    }
}
