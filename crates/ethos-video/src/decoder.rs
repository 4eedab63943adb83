//! [`Decoder`]: which decoder turns packets into frames: FFmpeg's software decoders on the CPU, or
//! NVIDIA's NVDEC through FFmpeg's `*_cuvid` decoders.

use serde::{Deserialize, Serialize};

/// Which video decoder to use (`data.decoder` in a config, `--decoder` on the command line).
///
/// NVDEC frames come back to system memory (NV12 for 8-bit video) and go through the same crop,
/// scale and colour conversion as CPU-decoded frames; 8-bit 4:2:0 frames are re-planarised
/// losslessly first, so both decoders give the same RGB bytes (H.264 and HEVC decoding is
/// bit-exact by specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// NVDEC when a CUDA device is there and it decodes the stream's codec, else the CPU (one log
    /// line per process says so). The default.
    #[default]
    Auto,
    /// FFmpeg's software decoders.
    Cpu,
    /// NVDEC; an error (naming `data.decoder` / `--decoder`) when it cannot open for the stream.
    Cuda,
}

impl Decoder {
    /// The name as written in configs and flags (`auto`, `cpu`, `cuda`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decoder::Auto => "auto",
            Decoder::Cpu => "cpu",
            Decoder::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decoder {
    type Err = String;

    /// Parses `auto`, `cpu` or `cuda` (`gpu` and `nvdec` are accepted for `cuda`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Decoder::Auto),
            "cpu" => Ok(Decoder::Cpu),
            "cuda" | "gpu" | "nvdec" => Ok(Decoder::Cuda),
            _ => Err(format!("decoder {s:?} must be auto, cpu or cuda")),
        }
    }
}

/// The name of FFmpeg's NVDEC decoder for a codec (FFmpeg's codec name, as [`crate::VideoInfo::codec`]
/// reports it), when FFmpeg has one.
pub fn cuvid_decoder_name(codec: &str) -> Option<&'static str> {
    Some(match codec {
        "h264" => "h264_cuvid",
        "hevc" => "hevc_cuvid",
        "av1" => "av1_cuvid",
        "vp8" => "vp8_cuvid",
        "vp9" => "vp9_cuvid",
        "mpeg1video" => "mpeg1_cuvid",
        "mpeg2video" => "mpeg2_cuvid",
        "mpeg4" => "mpeg4_cuvid",
        "mjpeg" => "mjpeg_cuvid",
        "vc1" => "vc1_cuvid",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_choice() {
        for d in [Decoder::Auto, Decoder::Cpu, Decoder::Cuda] {
            assert_eq!(d.as_str().parse::<Decoder>().unwrap(), d);
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!("GPU".parse::<Decoder>().unwrap(), Decoder::Cuda);
        let err = "vulkan".parse::<Decoder>().unwrap_err();
        assert!(
            err.contains("vulkan") && err.contains("auto, cpu or cuda"),
            "{err}"
        );
        assert_eq!(Decoder::default(), Decoder::Auto);
    }

    #[test]
    fn serde_uses_snake_case_names() {
        assert_eq!(serde_json::to_string(&Decoder::Cuda).unwrap(), "\"cuda\"");
        let d: Decoder = serde_json::from_str("\"cpu\"").unwrap();
        assert_eq!(d, Decoder::Cpu);
        assert!(serde_json::from_str::<Decoder>("\"nvidia\"").is_err());
    }

    #[test]
    fn cuvid_names_cover_the_common_codecs() {
        assert_eq!(cuvid_decoder_name("h264"), Some("h264_cuvid"));
        assert_eq!(cuvid_decoder_name("hevc"), Some("hevc_cuvid"));
        assert_eq!(cuvid_decoder_name("mpeg4"), Some("mpeg4_cuvid"));
        assert_eq!(cuvid_decoder_name("prores"), None);
    }
}
