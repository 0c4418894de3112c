//! Audio input: decode any common container/codec (symphonia), mix down to mono and resample to
//! Whisper's 16 kHz with a band-limited sinc resampler (rubato).
//!
//! Output matches what `whisper.audio.load_audio` hands the model: mono `f32` at 16 kHz in
//! `[-1, 1]` (Whisper clips through ffmpeg's 16-bit output; we clamp).

mod header;

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use rubato::audioadapter::Adapter;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};
use symphonia::core::codecs::audio::{well_known as codec, AudioCodecId, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

/// Whisper's input sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// The sample rates accepted for resampling: telephone-grade and below up to the highest rate
/// audio interfaces record (768 kHz).
const MIN_RATE_HZ: u32 = 1_000;
const MAX_RATE_HZ: u32 = 768_000;

/// Audio that may be lost to damaged packets or holes in a stream before the file counts as
/// corrupt. Lossy streams (MP3 in particular) often carry an odd damaged frame that players
/// conceal; losses are filled with silence so that later timestamps stay right.
const MAX_LOST_SECONDS: f64 = 0.5;

const SUPPORTED: &str = "WAV (8/16/24/32-bit int, 32/64-bit float, any channel count), AIFF, \
                         FLAC, MP3, OGG/Vorbis, M4A (AAC/ALAC)";

/// Why an audio file could not be turned into 16 kHz samples. Every message names the file and
/// says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("audio file {} does not exist: check the path", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read audio file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("audio file {} is empty (0 bytes): the recording or copy did not complete", path.display())]
    EmptyFile { path: PathBuf },

    #[error(
        "{} is not audio in a supported format ({detail}); supported: {SUPPORTED}. \
         Convert it first, e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`",
        path.display()
    )]
    UnknownFormat { path: PathBuf, detail: String },

    #[error(
        "{}: the {format} container holds no audio track that can be decoded",
        path.display()
    )]
    NoAudioTrack { path: PathBuf, format: String },

    #[error(
        "{}: the audio in this {format} file uses an unsupported encoding ({codec}); supported: \
         {SUPPORTED}. Convert it first, e.g. `ffmpeg -i INPUT -ar 16000 -ac 1 out.wav`",
        path.display()
    )]
    UnsupportedCodec {
        path: PathBuf,
        format: String,
        codec: String,
    },

    #[error(
        "{} is corrupt{}: {detail}; re-export or re-download the file",
        path.display(),
        at_seconds.map(|t| format!(" at {t:.2} s")).unwrap_or_default()
    )]
    Corrupt {
        path: PathBuf,
        /// Where in the audio the damage starts, when known.
        at_seconds: Option<f64>,
        detail: String,
    },

    #[error(
        "{} decodes to zero audio samples: the file holds no sound (header only?)",
        path.display()
    )]
    NoSamples { path: PathBuf },

    #[error(
        "{} holds more than {max_seconds} s of audio, the most this caller accepts; split it",
        path.display()
    )]
    TooLong { path: PathBuf, max_seconds: f64 },

    #[error("{}: resampling from {from_hz} Hz to 16 kHz failed: {detail}", path.display())]
    Resample {
        path: PathBuf,
        from_hz: u32,
        detail: String,
    },
}

/// Decodes the audio file at `path` into 16 kHz mono samples in `[-1, 1]`.
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => AudioError::NotFound {
            path: path.to_path_buf(),
        },
        _ => AudioError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let len = file
        .metadata()
        .map_err(|e| AudioError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .len();
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(AudioError::Io {
            path: path.to_path_buf(),
            source: io::Error::other("this is a directory, not an audio file"),
        });
    }
    if len == 0 {
        return Err(AudioError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut file = file;
    let io_err = |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut prefix = Vec::with_capacity(header::PREFIX_BYTES);
    (&mut file)
        .take(header::PREFIX_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(io_err)?;
    header::check(&prefix, path)?;
    file.rewind().map_err(io_err)?;
    decode_source(Box::new(file), hint, path)
}

/// Decodes an in-memory audio file (any supported format). `name` labels error messages.
pub fn decode_audio_bytes(bytes: &[u8], name: &str) -> Result<Vec<f32>, AudioError> {
    // Copy so the source is 'static + Send + Sync as symphonia wants; audio files are small
    // compared with their decoded samples.
    decode_audio_limited(bytes.to_vec(), name, None)
}

/// Decodes an in-memory audio file, stopping with [`AudioError::TooLong`] as soon as it holds
/// more than `max_seconds` of audio (a small compressed upload can decode to hours of samples;
/// this bounds the memory a server spends on one). `name` labels error messages, and its
/// extension, if any, hints at the format.
pub fn decode_audio_limited(
    bytes: Vec<u8>,
    name: &str,
    max_seconds: Option<f64>,
) -> Result<Vec<f32>, AudioError> {
    let path = Path::new(name);
    if bytes.is_empty() {
        return Err(AudioError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    header::check(&bytes[..bytes.len().min(header::PREFIX_BYTES)], path)?;
    decode_source_limited(Box::new(io::Cursor::new(bytes)), hint, path, max_seconds)
}

/// Decodes audio from a non-seekable reader (a pipe, stdin). `name` labels error messages.
/// Formats whose index sits at the end of the file (some M4A) need [`load_audio`] instead.
pub fn decode_audio_reader<R: Read + Send + Sync + 'static>(
    mut reader: R,
    name: &str,
) -> Result<Vec<f32>, AudioError> {
    let path = Path::new(name);
    // Read one byte first: an empty pipe is "empty", not "unknown format".
    let mut first = [0u8; 1];
    let got = loop {
        match reader.read(&mut first) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(AudioError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
    };
    if got == 0 {
        return Err(AudioError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    // The start of the stream is read ahead for the header checks, then decoded with the rest.
    let mut prefix = first[..1].to_vec();
    (&mut reader)
        .take(header::PREFIX_BYTES as u64 - 1)
        .read_to_end(&mut prefix)
        .map_err(|source| AudioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    header::check(&prefix, path)?;
    let chained = io::Cursor::new(prefix).chain(reader);
    decode_source(Box::new(ReadOnlySource::new(chained)), Hint::new(), path)
}

/// A mono 16 kHz signal from interleaved samples at any rate: averages channels, then resamples.
/// Exposed for callers that decode audio themselves.
pub fn to_whisper_input(
    interleaved: &[f32],
    channels: usize,
    rate_hz: u32,
    name: &str,
) -> Result<Vec<f32>, AudioError> {
    let channels = channels.max(1);
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    finish(mono, rate_hz, Path::new(name))
}

fn decode_source(
    source: Box<dyn MediaSource>,
    hint: Hint,
    path: &Path,
) -> Result<Vec<f32>, AudioError> {
    decode_source_limited(source, hint, path, None)
}

fn decode_source_limited(
    source: Box<dyn MediaSource>,
    hint: Hint,
    path: &Path,
    max_seconds: Option<f64>,
) -> Result<Vec<f32>, AudioError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| probe_error(e, path))?;
    let format_name = format.format_info().short_name.to_string();

    let (mono, rate) = decode_all(format.as_mut(), &format_name, path, max_seconds)?;
    finish(mono, rate, path)
}

/// Resamples mono audio to 16 kHz and clamps it to [-1, 1].
fn finish(mut mono: Vec<f32>, rate: u32, path: &Path) -> Result<Vec<f32>, AudioError> {
    if mono.is_empty() {
        return Err(AudioError::NoSamples {
            path: path.to_path_buf(),
        });
    }
    // NaN/inf (a broken float WAV) become silence before the filter could smear them.
    for s in &mut mono {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    let mut out = if rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, rate, path)?
    };
    // Clamp after resampling (filter overshoot near full scale is real signal until here), as
    // Whisper's ffmpeg clips when it writes 16-bit samples.
    for s in &mut out {
        *s = s.clamp(-1.0, 1.0);
    }
    Ok(out)
}

fn probe_error(e: SymError, path: &Path) -> AudioError {
    match e {
        SymError::Unsupported(what) if what.contains("no suitable format reader") => {
            AudioError::UnknownFormat {
                path: path.to_path_buf(),
                detail: "no known container signature".into(),
            }
        }
        // A reader recognised the container but cannot handle a feature of it (e.g. an exotic
        // WAV format tag): the codec inside is what is unsupported.
        SymError::Unsupported(what) => AudioError::UnsupportedCodec {
            path: path.to_path_buf(),
            format: path
                .extension()
                .map(|e| e.to_string_lossy().to_uppercase())
                .unwrap_or_else(|| "audio".into()),
            codec: what.to_string(),
        },
        SymError::IoError(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            // Recognised as some container, but the file ends inside its header.
            AudioError::Corrupt {
                path: path.to_path_buf(),
                at_seconds: None,
                detail: "the file ends before its header says it should (truncated)".into(),
            }
        }
        SymError::IoError(io) => AudioError::Io {
            path: path.to_path_buf(),
            source: io,
        },
        other => AudioError::Corrupt {
            path: path.to_path_buf(),
            at_seconds: None,
            detail: format!("invalid header: {other}"),
        },
    }
}

/// The track to decode: the container's default audio track, else the first audio track.
fn pick_track(format: &dyn FormatReader) -> Option<Track> {
    format
        .default_track(TrackType::Audio)
        .or_else(|| {
            format
                .tracks()
                .iter()
                .find(|t| t.codec_params.as_ref().and_then(|p| p.audio()).is_some())
        })
        .cloned()
}

struct TrackDecoder {
    id: u32,
    decoder: Box<dyn symphonia::core::codecs::audio::AudioDecoder>,
    /// Seconds per packet-timestamp unit, where the container says.
    seconds_per_tick: Option<f64>,
    /// Sample rate the container declares (used before the first packet decodes).
    declared_rate: Option<u32>,
    /// Length in sample frames that the header announces, where it does.
    declared_frames: Option<u64>,
}

fn open_track(
    format: &dyn FormatReader,
    format_name: &str,
    path: &Path,
) -> Result<TrackDecoder, AudioError> {
    let no_track = || AudioError::NoAudioTrack {
        path: path.to_path_buf(),
        format: format_name.to_string(),
    };
    let track = pick_track(format).ok_or_else(no_track)?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(no_track)?;
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => AudioError::UnsupportedCodec {
                path: path.to_path_buf(),
                format: format_name.to_string(),
                codec: codec_name(params.codec),
            },
            other => AudioError::Corrupt {
                path: path.to_path_buf(),
                at_seconds: None,
                detail: format!("invalid codec parameters: {other}"),
            },
        })?;
    let seconds_per_tick = track
        .time_base
        .map(|tb| tb.numer.get() as f64 / tb.denom.get() as f64);
    Ok(TrackDecoder {
        id: track.id,
        decoder,
        seconds_per_tick,
        declared_rate: params.sample_rate,
        declared_frames: track.num_frames,
    })
}

/// Decoded mono audio plus what could not be decoded.
struct Decoded {
    mono: Vec<f32>,
    rate: Option<u32>,
    /// Seconds of audio lost to undecodable packets or holes in the stream (filled with silence
    /// so that later timestamps stay right), and where the first loss was.
    lost_seconds: f64,
    first_loss_at: Option<f64>,
    last_error: String,
}

impl Decoded {
    fn seconds(&self) -> f64 {
        self.mono.len() as f64 / self.rate.unwrap_or(SAMPLE_RATE) as f64
    }

    /// Records `ticks` packet-timestamp units of lost audio and fills them with silence.
    fn lose(&mut self, ticks: u64, track: &TrackDecoder, why: String) {
        let rate = self.rate.or(track.declared_rate).unwrap_or(SAMPLE_RATE);
        let secs = match track.seconds_per_tick {
            Some(s) => ticks as f64 * s,
            None => ticks as f64 / rate as f64,
        };
        self.first_loss_at.get_or_insert(self.seconds());
        self.lost_seconds += secs;
        self.last_error = why;
        let frames = (secs * rate as f64).round() as usize;
        // Bounded so that a garbage timestamp cannot allocate without limit.
        if self.lost_seconds <= MAX_LOST_SECONDS {
            self.mono.resize(self.mono.len() + frames, 0.0);
        }
    }
}

/// Decodes every packet of the chosen track, averaging channels as it goes so memory stays at
/// one mono copy. Returns the mono samples and their rate.
fn decode_all(
    format: &mut dyn FormatReader,
    format_name: &str,
    path: &Path,
    max_seconds: Option<f64>,
) -> Result<(Vec<f32>, u32), AudioError> {
    let mut track = open_track(format, format_name, path)?;
    let too_long = || AudioError::TooLong {
        path: path.to_path_buf(),
        max_seconds: max_seconds.unwrap_or(0.0),
    };
    if let (Some(max), Some(frames), Some(rate)) =
        (max_seconds, track.declared_frames, track.declared_rate)
    {
        // The header already says so: do not decode at all.
        if frames as f64 / rate.max(1) as f64 > max {
            return Err(too_long());
        }
    }
    let mut out = Decoded {
        mono: Vec::new(),
        rate: None,
        lost_seconds: 0.0,
        first_loss_at: None,
        last_error: String::new(),
    };
    let mut interleaved: Vec<f32> = Vec::new();
    let mut decoded_packets = 0usize;
    let mut next_pts: Option<i64> = None;
    let corrupt = |out: &Decoded, detail: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        at_seconds: Some(out.first_loss_at.unwrap_or_else(|| out.seconds())),
        detail,
    };

    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A file cut off mid-stream: keep what decoded, as ffmpeg (and so Whisper) does.
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A chained OGG stream starts a new logical stream: continue with its decoder.
            Err(SymError::ResetRequired) => {
                track = open_track(format, format_name, path)?;
                next_pts = None;
                continue;
            }
            Err(e) => return Err(corrupt(&out, format!("cannot read the next packet: {e}"))),
        };
        if packet.track_id != track.id {
            continue;
        }
        // A reader that resynchronised past damaged data leaves a hole in the timestamps.
        let pts = packet.pts.get();
        if let Some(expected) = next_pts {
            if pts > expected + 1 {
                let hole = (pts - expected) as u64;
                out.lose(hole, &track, "the stream skips over unreadable data".into());
            }
        }
        next_pts = Some(pts.saturating_add(packet.block_dur().get() as i64));

        match track.decoder.decode(&packet) {
            Ok(buf) => {
                decoded_packets += 1;
                let spec = buf.spec();
                let this_rate = spec.rate();
                let channels = spec.channels().count().max(1);
                match out.rate {
                    None => out.rate = Some(this_rate),
                    Some(r) if r != this_rate => {
                        return Err(AudioError::UnsupportedCodec {
                            path: path.to_path_buf(),
                            format: format_name.to_string(),
                            codec: format!(
                                "a stream whose sample rate changes ({r} Hz → {this_rate} Hz)"
                            ),
                        })
                    }
                    Some(_) => {}
                }
                if buf.frames() == 0 {
                    continue;
                }
                buf.copy_to_vec_interleaved(&mut interleaved);
                if channels == 1 {
                    out.mono.extend_from_slice(&interleaved);
                } else {
                    let inv = 1.0 / channels as f32;
                    out.mono.extend(
                        interleaved
                            .chunks_exact(channels)
                            .map(|f| f.iter().sum::<f32>() * inv),
                    );
                }
            }
            // Damaged packet: conceal it with silence of its length, as players do.
            Err(SymError::DecodeError(msg)) => {
                out.lose(packet.dur.get(), &track, format!("malformed packet: {msg}"))
            }
            Err(SymError::IoError(e)) => {
                out.lose(packet.dur.get(), &track, format!("truncated packet: {e}"))
            }
            Err(SymError::Unsupported(what)) => {
                return Err(AudioError::UnsupportedCodec {
                    path: path.to_path_buf(),
                    format: format_name.to_string(),
                    codec: format!("{} ({what})", track.decoder.codec_info().short_name),
                })
            }
            Err(e) => return Err(corrupt(&out, e.to_string())),
        }
        if max_seconds.is_some_and(|max| out.seconds() > max) {
            return Err(too_long());
        }
        if out.lost_seconds > MAX_LOST_SECONDS {
            let detail = format!(
                "more than {MAX_LOST_SECONDS} s of audio cannot be decoded; last problem: {}",
                out.last_error
            );
            return Err(corrupt(&out, detail));
        }
    }
    if decoded_packets == 0 && !out.last_error.is_empty() {
        let detail = format!("no packet decodes; {}", out.last_error);
        return Err(corrupt(&out, detail));
    }
    // Readers resynchronise silently past garbage (MP3 has no timestamps to betray the hole),
    // and a cut-off file simply ends: both show as less audio than the header announces.
    if let (Some(frames), Some(rate)) = (track.declared_frames, track.declared_rate) {
        let announced = frames as f64 / rate as f64;
        let got = out.seconds();
        if announced - got > MAX_LOST_SECONDS {
            return Err(AudioError::Corrupt {
                path: path.to_path_buf(),
                at_seconds: Some(out.first_loss_at.unwrap_or(got).min(got)),
                detail: format!(
                    "only {got:.2} s of the {announced:.2} s that the header announces can be \
                     decoded: the file is truncated or damaged"
                ),
            });
        }
    }
    Ok((
        out.mono,
        out.rate.or(track.declared_rate).unwrap_or(SAMPLE_RATE),
    ))
}

/// Band-limited resampling to 16 kHz with rubato's synchronous resampler: the exact rational
/// ratio, anti-aliasing by a windowed sinc (Blackman-Harris²) of about 4096 input taps applied in
/// the frequency domain, so everything above 8 kHz is removed before decimation.
fn resample(mono: &[f32], from_hz: u32, path: &Path) -> Result<Vec<f32>, AudioError> {
    let err = |detail: String| AudioError::Resample {
        path: path.to_path_buf(),
        from_hz,
        detail,
    };
    // The resampler's blocks grow with the rate (up to the whole rate for one coprime with
    // 16 kHz): an absurd declared rate must not allocate gigabytes (found by fuzzing).
    if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&from_hz) {
        return Err(err(format!(
            "the file declares a sample rate of {from_hz} Hz; rates from {MIN_RATE_HZ} to \
             {MAX_RATE_HZ} Hz are supported"
        )));
    }
    let (block_in, _) = fft_block(from_hz);
    let mut resampler = Fft::<f32>::new_custom(
        from_hz as usize,
        SAMPLE_RATE as usize,
        block_in,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Input,
    )
    .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| err(e.to_string()))?;
    let out = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| err(e.to_string()))?;
    let frames = out.frames();
    let mut data = out.take_data();
    data.truncate(frames);
    Ok(data)
}

/// FFT block sizes (input, output) for resampling `from_hz` to 16 kHz: a whole number of the
/// smallest blocks the rational ratio allows, at least 4096 input samples long (filter sharpness),
/// with both sizes even. The filter's delay is half the input block; with both sizes even it is
/// a whole number of output samples, which rubato trims exactly, so output sample 0 lines up
/// with input sample 0 (an odd block leaves a half-sample shift).
fn fft_block(from_hz: u32) -> (usize, usize) {
    let (a, b) = (from_hz as usize, SAMPLE_RATE as usize);
    let g = gcd(a, b);
    let (min_in, min_out) = (a / g, b / g);
    let mut m = 4096usize.div_ceil(min_in).max(1);
    if (m * min_in) % 2 == 1 || (m * min_out) % 2 == 1 {
        m *= 2;
    }
    (m * min_in, m * min_out)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn codec_name(id: AudioCodecId) -> String {
    let known: &[(AudioCodecId, &str)] = &[
        (codec::CODEC_ID_OPUS, "Opus"),
        (codec::CODEC_ID_AAC, "AAC"),
        (codec::CODEC_ID_ALAC, "ALAC"),
        (codec::CODEC_ID_AC3, "AC-3"),
        (codec::CODEC_ID_EAC3, "E-AC-3"),
        (codec::CODEC_ID_DCA, "DTS"),
        (codec::CODEC_ID_WMA, "WMA"),
        (codec::CODEC_ID_SPEEX, "Speex"),
        (codec::CODEC_ID_WAVPACK, "WavPack"),
        (codec::CODEC_ID_MONKEYS_AUDIO, "Monkey's Audio"),
        (codec::CODEC_ID_ADPCM_G722, "G.722 ADPCM"),
        (codec::CODEC_ID_ADPCM_G726, "G.726 ADPCM"),
        (codec::CODEC_ID_MP1, "MPEG-1 Layer I"),
        (codec::CODEC_ID_MP2, "MPEG-1 Layer II"),
        (codec::CODEC_ID_MP3, "MP3"),
        (codec::CODEC_ID_VORBIS, "Vorbis"),
        (codec::CODEC_ID_FLAC, "FLAC"),
    ];
    known
        .iter()
        .find(|(k, _)| *k == id)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("with id {id}"))
}
