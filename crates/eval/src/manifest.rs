//! Evaluation manifests: a TSV listing audio clips with their reference transcripts.
//!
//! `manifest.tsv` has a header naming at least the columns `file` (audio path relative to the
//! manifest's directory), `duration_s` and `reference`; other columns (`source`, `license`, …)
//! are ignored. An optional `extra.tsv` beside it adds per-clip columns keyed by `file`, of which
//! `lang` (the clip's language code) is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// The clip's name as written in the manifest.
    pub file: String,
    /// `file` resolved against the manifest's directory.
    pub path: PathBuf,
    pub duration_s: f64,
    pub reference: String,
    /// From `extra.tsv`'s `lang` column, when there is one.
    pub language: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: empty file; expected a tab-separated header line naming the columns {expected}"
    )]
    Empty { path: PathBuf, expected: String },
    #[error("{path}:1: header has no `{column}` column (found: {found}); the header is tab-separated column names")]
    MissingColumn {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A parsed TSV: the header's column indices and the data rows with their 1-based line numbers.
struct Table<'a> {
    path: &'a Path,
    columns: HashMap<&'a str, usize>,
    header: Vec<&'a str>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Table<'a> {
    fn parse(path: &'a Path, text: &'a str, expected: &[&str]) -> Result<Self, ManifestError> {
        let mut lines = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header_line)) = lines.next() else {
            return Err(ManifestError::Empty {
                path: path.to_owned(),
                expected: expected.join(", "),
            });
        };
        let header: Vec<&str> = header_line.split('\t').map(str::trim).collect();
        let mut columns = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if columns.insert(*name, i).is_some() {
                return Err(ManifestError::Line {
                    path: path.to_owned(),
                    line: 1,
                    message: format!("column `{name}` appears twice in the header"),
                });
            }
        }
        let mut rows = Vec::new();
        for (line, text) in lines {
            let fields: Vec<&str> = text.split('\t').collect();
            if fields.len() != header.len() {
                return Err(ManifestError::Line {
                    path: path.to_owned(),
                    line,
                    message: format!(
                        "{} tab-separated fields, but the header has {} ({})",
                        fields.len(),
                        header.len(),
                        header.join(", ")
                    ),
                });
            }
            rows.push((line, fields));
        }
        Ok(Table {
            path,
            columns,
            header,
            rows,
        })
    }

    fn column(&self, name: &'static str) -> Result<usize, ManifestError> {
        self.columns
            .get(name)
            .copied()
            .ok_or_else(|| ManifestError::MissingColumn {
                path: self.path.to_owned(),
                column: name,
                found: self.header.join(", "),
            })
    }

    fn error(&self, line: usize, message: String) -> ManifestError {
        ManifestError::Line {
            path: self.path.to_owned(),
            line,
            message,
        }
    }
}

fn read(path: &Path) -> Result<String, ManifestError> {
    std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads `manifest` and, when present, `extra.tsv` in the same directory.
pub fn read_manifest(manifest: &Path) -> Result<Vec<Clip>, ManifestError> {
    let text = read(manifest)?;
    let dir = manifest.parent().unwrap_or(Path::new(""));
    let table = Table::parse(manifest, &text, &["file", "duration_s", "reference"])?;
    let (file_col, duration_col, reference_col) = (
        table.column("file")?,
        table.column("duration_s")?,
        table.column("reference")?,
    );

    let mut clips = Vec::with_capacity(table.rows.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (line, fields) in &table.rows {
        let file = fields[file_col].trim();
        if file.is_empty() {
            return Err(table.error(*line, "empty `file` field".into()));
        }
        if let Some(first) = seen.insert(file, *line) {
            return Err(table.error(
                *line,
                format!("clip `{file}` already listed on line {first}"),
            ));
        }
        let duration_text = fields[duration_col].trim();
        let duration_s = duration_text
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && *d >= 0.0)
            .ok_or_else(|| {
                table.error(
                    *line,
                    format!("duration_s `{duration_text}` is not a non-negative number of seconds"),
                )
            })?;
        clips.push(Clip {
            file: file.to_owned(),
            path: dir.join(file),
            duration_s,
            reference: fields[reference_col].trim().to_owned(),
            language: None,
        });
    }

    let extra_path = dir.join("extra.tsv");
    if extra_path.is_file() {
        apply_extra(&extra_path, &mut clips)?;
    }
    Ok(clips)
}

/// Sets each clip's language from `extra.tsv` (`file` and `lang` columns). Rows for clips the
/// manifest does not list are ignored, so a manifest may be cut down without editing it.
fn apply_extra(path: &Path, clips: &mut [Clip]) -> Result<(), ManifestError> {
    let text = read(path)?;
    let table = Table::parse(path, &text, &["file", "lang"])?;
    let (file_col, lang_col) = (table.column("file")?, table.column("lang")?);
    let mut languages: HashMap<&str, (usize, &str)> = HashMap::new();
    for (line, fields) in &table.rows {
        let file = fields[file_col].trim();
        let lang = fields[lang_col].trim();
        if let Some((first, _)) = languages.insert(file, (*line, lang)) {
            return Err(table.error(
                *line,
                format!("clip `{file}` already listed on line {first}"),
            ));
        }
    }
    for clip in clips {
        if let Some((_, lang)) = languages.get(clip.file.as_str()) {
            clip.language = (!lang.is_empty()).then(|| lang.to_string());
        }
    }
    Ok(())
}
