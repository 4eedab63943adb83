//! Opening a stream's decoder for a [`Decoder`] choice: NVDEC through FFmpeg's `*_cuvid` decoders,
//! or FFmpeg's software decoder.
//!
//! NVDEC decoders share one CUDA device context per process (FFmpeg's CUDA hwcontext on the
//! device's primary context, the one libtorch uses), so a clip costs a decoder, not a CUDA context.
//! A `get_format` callback asks for a software pixel format (NV12 for 8-bit 4:2:0): cuvid then
//! copies every decoded frame back to system memory itself. Whether a CUDA device is there is
//! found by creating that device context once: without a driver or a device it fails, and `auto`
//! decodes on the CPU from then on, saying so in one log line per process.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, Once, OnceLock};

use ffmpeg::{Rational, codec, decoder, ffi};
use ffmpeg_next as ffmpeg;

use crate::decoder::cuvid_decoder_name;
use crate::{Decoder, VideoError};

/// A decoder opened for a stream, and the NVDEC decoder's name when it is one.
pub(crate) struct OpenedDecoder {
    /// The opened decoder.
    pub decoder: decoder::Video,
    /// `Some("h264_cuvid")` etc. when NVDEC decodes the stream.
    pub hardware: Option<&'static str>,
}

/// The process's CUDA device context (an `AVBufferRef` that is never freed), or why there is none.
struct CudaDevice(*mut ffi::AVBufferRef);

// SAFETY: the buffer is only ever referenced (av_buffer_ref is thread-safe) and never freed.
unsafe impl Send for CudaDevice {}
unsafe impl Sync for CudaDevice {}

static CUDA_DEVICE: OnceLock<Result<CudaDevice, String>> = OnceLock::new();

/// NVDEC decoders that failed to open in this process (`auto` does not try them again).
static FAILED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

static FALLBACK_LOGGED: Once = Once::new();

/// Creates (once) the CUDA device context NVDEC decoders share.
fn cuda_device() -> Result<*mut ffi::AVBufferRef, String> {
    let device = CUDA_DEVICE.get_or_init(|| {
        crate::init();
        let mut dict: *mut ffi::AVDictionary = std::ptr::null_mut();
        let mut device: *mut ffi::AVBufferRef = std::ptr::null_mut();
        // FFmpeg logs its own error lines when libcuda is missing; the caller reports the reason once.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        // SAFETY: the dictionary and the out pointer are valid; FFmpeg copies the options.
        let ret = unsafe {
            ffi::av_dict_set(&mut dict, c"primary_ctx".as_ptr(), c"1".as_ptr(), 0);
            let ret = ffi::av_hwdevice_ctx_create(
                &mut device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
                std::ptr::null(),
                dict,
                0,
            );
            ffi::av_dict_free(&mut dict);
            ret
        };
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        if ret < 0 || device.is_null() {
            Err(format!(
                "FFmpeg cannot create a CUDA context: no libcuda.so.1, no GPU or a driver error ({})",
                ffmpeg::Error::from(ret)
            ))
        } else {
            Ok(CudaDevice(device))
        }
    });
    match device {
        Ok(d) => Ok(d.0),
        Err(e) => Err(e.clone()),
    }
}

/// `get_format` callback: the first software format FFmpeg offers, so NVDEC frames arrive in
/// system memory even though the context carries a CUDA device.
unsafe extern "C" fn prefer_software_format(
    _ctx: *mut ffi::AVCodecContext,
    formats: *const ffi::AVPixelFormat,
) -> ffi::AVPixelFormat {
    let mut first = ffi::AVPixelFormat::AV_PIX_FMT_NONE;
    let mut i = 0;
    loop {
        // SAFETY: FFmpeg passes a list terminated by AV_PIX_FMT_NONE.
        let format = unsafe { *formats.add(i) };
        if format == ffi::AVPixelFormat::AV_PIX_FMT_NONE {
            return first;
        }
        if i == 0 {
            first = format;
        }
        // SAFETY: av_pix_fmt_desc_get returns a static descriptor or null.
        let desc = unsafe { ffi::av_pix_fmt_desc_get(format) };
        if !desc.is_null() && unsafe { (*desc).flags } & ffi::AV_PIX_FMT_FLAG_HWACCEL as u64 == 0 {
            return format;
        }
        i += 1;
    }
}

fn failed_before(name: &'static str) -> bool {
    FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|s| s.contains(name))
}

/// Remembers that `name` cannot decode here, so `auto` stops trying it.
pub(crate) fn mark_failed(name: &'static str) {
    FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(name);
}

/// Logs, once per process, that `auto` decodes on the CPU and why.
pub(crate) fn log_fallback(reason: &str) {
    FALLBACK_LOGGED.call_once(|| {
        tracing::info!("decoder auto: not using NVDEC ({reason}); decoding video on the CPU");
    });
}

/// Opens the NVDEC decoder for a stream with `params`, or says why it cannot.
fn open_nvdec(
    params: &codec::Parameters,
    time_base: Rational,
) -> Result<(decoder::Video, &'static str), (Option<&'static str>, String)> {
    let codec_name = params.id().name();
    let name = cuvid_decoder_name(codec_name)
        .ok_or_else(|| (None, format!("NVDEC does not decode {codec_name}")))?;
    let hw = ffmpeg::decoder::find_by_name(name)
        .ok_or_else(|| (None, format!("this FFmpeg was built without {name}")))?;
    let device = cuda_device().map_err(|e| (None, e))?;
    let fail = |e: String| (Some(name), e);
    let mut ctx = codec::context::Context::from_parameters(params.clone())
        .map_err(|e| fail(format!("codec parameters: {e}")))?;
    // SAFETY: the context is fresh and owned here; the device reference is released by FFmpeg when
    // the context is freed.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).hw_device_ctx = ffi::av_buffer_ref(device);
        if (*raw).hw_device_ctx.is_null() {
            return Err(fail("out of memory".into()));
        }
        (*raw).get_format = Some(prefer_software_format);
        // cuvid rescales timestamps through its 10 MHz clock with this time base.
        (*raw).pkt_timebase = time_base.into();
    }
    let decoder = ctx
        .decoder()
        .open_as(hw)
        .and_then(|o| o.video())
        .map_err(|e| fail(format!("{name} cannot open: {e}")))?;
    Ok((decoder, name))
}

/// Opens the decoder of a stream for `choice`: NVDEC for `cuda` (or an error naming the setting),
/// NVDEC if it opens for `auto` (else the CPU decoder, logged once per process), the CPU decoder
/// with `threads` frame threads for `cpu`.
pub(crate) fn open_decoder(
    path: &Path,
    params: &codec::Parameters,
    time_base: Rational,
    threads: usize,
    choice: Decoder,
) -> Result<OpenedDecoder, VideoError> {
    let skip_nvdec = choice == Decoder::Auto
        && cuvid_decoder_name(params.id().name()).is_some_and(failed_before);
    if choice != Decoder::Cpu && !skip_nvdec {
        match open_nvdec(params, time_base) {
            Ok((decoder, name)) => {
                return Ok(OpenedDecoder {
                    decoder,
                    hardware: Some(name),
                });
            }
            Err((_, reason)) if choice == Decoder::Cuda => {
                return Err(VideoError::HwDecoder {
                    path: path.to_path_buf(),
                    reason,
                });
            }
            Err((name, reason)) => {
                if let Some(name) = name {
                    mark_failed(name);
                }
                log_fallback(&reason);
            }
        }
    }
    let invalid = |reason: String| VideoError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut ctx = codec::context::Context::from_parameters(params.clone())
        .map_err(|e| invalid(format!("codec parameters: {e}")))?;
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: threads.max(1),
        ..Default::default()
    });
    let decoder = ctx
        .decoder()
        .video()
        .map_err(|e| invalid(format!("no decoder for this codec: {e}")))?;
    Ok(OpenedDecoder {
        decoder,
        hardware: None,
    })
}

/// Whether NVDEC can decode `codec` (FFmpeg's codec name: `h264`, `hevc`, ...) on this machine:
/// the decoder's name, or why not. Opens (and closes) a decoder for a 1920x1080 4:2:0 stream.
pub fn nvdec_available(codec: &str) -> Result<&'static str, String> {
    crate::init();
    let id = ffmpeg::decoder::find_by_name(codec)
        .map(|c| c.id())
        .ok_or_else(|| format!("FFmpeg has no {codec} decoder"))?;
    let mut params = codec::Parameters::new();
    // SAFETY: the parameters are fresh and owned here.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*p).codec_id = id.into();
        (*p).width = 1920;
        (*p).height = 1080;
        (*p).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
    }
    open_nvdec(&params, Rational::new(1, 90_000))
        .map(|(_, name)| name)
        .map_err(|(_, reason)| reason)
}
