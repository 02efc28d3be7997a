//! The hub checkpoints into the weights folder, in the Python app's layout
//! (`<weights>/TripoSG/...`, `<weights>/RMBG-1.4/...`), so a folder downloaded by the old app is
//! reused as it is and ours works with it.
//!
//! hf-hub does the transfers (endpoint, token, resumable `.part` files, retries); its cache lives
//! inside the weights folder so finished files are moved into place without a second copy. We add
//! what it lacks: the file list with the hub's sizes and sha256 at one resolved commit, checks of
//! both before a file is put in place, and a lock file pinning that commit for later runs.
//! What happens is reported as [`Progress`] events: `triposg download` prints them, the web
//! app shows them as a progress bar.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::api::Progress as HubProgress;
use hf_hub::{Repo, RepoType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One hub repository and the files of it that the app loads.
struct Source {
    repo: &'static str,
    folder: &'static str,
    wanted: fn(&str) -> bool,
}

const SOURCES: [Source; 2] = [
    Source {
        repo: "VAST-AI/TripoSG",
        folder: "TripoSG",
        wanted: |name| {
            name == "model_index.json"
                || [
                    "transformer/",
                    "vae/",
                    "image_encoder_dinov2/",
                    "feature_extractor_dinov2/",
                    "scheduler/",
                ]
                .iter()
                .any(|dir| name.starts_with(dir))
                    && (name.ends_with(".json") || name.ends_with(".safetensors"))
        },
    },
    // Non-commercial licence (bria-rmbg-1.4); only needed for photos without a transparent
    // background, and only these two of its files are used.
    Source {
        repo: "briaai/RMBG-1.4",
        folder: "RMBG-1.4",
        wanted: |name| name == "config.json" || name == "model.safetensors",
    },
];

const LOCK_FILE: &str = "triposg-weights.lock.json";
const CACHE_DIR: &str = ".download-cache";

/// What a previous download resolved, so later runs fetch exactly the same files.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Lock {
    repos: BTreeMap<String, LockedRepo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockedRepo {
    commit: String,
    files: BTreeMap<String, LockedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LockedFile {
    size: u64,
    sha256: String,
}

/// The hub's `GET /api/models/{repo}/revision/{rev}?blobs=true`.
#[derive(Debug, Deserialize)]
struct Listing {
    sha: String,
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Resolve the newest commit instead of the one in the lock file.
    pub update: bool,
    /// Skip BriaRMBG-1.4 (non-commercial licence; users with cut-outs don't need it).
    pub skip_rmbg: bool,
    /// The hub (or a mirror) to use instead of `HF_ENDPOINT` / huggingface.co.
    pub endpoint: Option<String>,
}

/// What a download is doing, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// A repository resolved to a commit; `bytes` is the total of the files the app needs.
    Repo {
        repo: String,
        commit: String,
        files: usize,
        bytes: u64,
    },
    /// A file already in place and matching the hub's (`hashed`: verified by hashing now).
    Present {
        file: String,
        bytes: u64,
        hashed: bool,
    },
    /// A file in place that differs from the hub's, about to be downloaded again.
    Replacing { file: String },
    /// A transfer begins; `bytes` as the hub lists it.
    Started { file: String, bytes: Option<u64> },
    /// `done` of `total` bytes of the current transfer.
    Bytes { file: String, done: u64, total: u64 },
    Finished {
        file: String,
        bytes: u64,
        seconds: f64,
    },
    /// Offline mode (HF_HUB_OFFLINE) found a repository usable as it is.
    Offline { message: String },
}

/// Fetches what is missing or different and pins the commit; `on_progress` hears every step.
pub fn download(
    weights: &Path,
    opts: &Options,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    fs::create_dir_all(weights)
        .with_context(|| format!("cannot create the weights folder {}", weights.display()))?;
    let lock_path = weights.join(LOCK_FILE);
    let mut lock = read_lock(&lock_path)?;
    let offline = env_flag("HF_HUB_OFFLINE");
    let sources = SOURCES
        .iter()
        .filter(|s| !(opts.skip_rmbg && s.folder == "RMBG-1.4"));
    for source in sources {
        let dest = weights.join(source.folder);
        let pinned = lock.repos.get(source.repo).filter(|_| !opts.update);
        if offline {
            on_progress(Progress::Offline {
                message: check_offline(source, &dest, pinned)?,
            });
            continue;
        }
        let locked = fetch_repo(weights, opts, source, &dest, pinned, on_progress)?;
        lock.repos.insert(source.repo.to_string(), locked);
        write_lock(&lock_path, &lock)?;
    }
    // Partial files stay in the cache only while something is unfinished, for resuming.
    let _ = fs::remove_dir_all(weights.join(CACHE_DIR));
    Ok(())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

fn manual_command(source: &Source, dest: &Path) -> String {
    format!(
        "`huggingface-cli download {} --local-dir {}` on a machine with internet access, then copy the folder here",
        source.repo,
        dest.display()
    )
}

/// With HF_HUB_OFFLINE set nothing is fetched: the files must already be complete. Returns
/// what was found.
fn check_offline(source: &Source, dest: &Path, pinned: Option<&LockedRepo>) -> Result<String> {
    let Some(pinned) = pinned else {
        if dest.is_dir() {
            return Ok(format!(
                "offline: {} present at {} (no lock file: run `triposg check-weights` to validate it)",
                source.repo,
                dest.display()
            ));
        }
        bail!(
            "HF_HUB_OFFLINE is set and {} is not in {}. Unset HF_HUB_OFFLINE, or download it with {}",
            source.repo,
            dest.display(),
            manual_command(source, dest)
        );
    };
    for (name, file) in &pinned.files {
        let path = dest.join(name);
        match fs::metadata(&path) {
            Ok(m) if m.len() == file.size => {}
            _ => bail!(
                "HF_HUB_OFFLINE is set and {} is missing or incomplete. Unset HF_HUB_OFFLINE to resume the download, or get it with {}",
                path.display(),
                manual_command(source, dest)
            ),
        }
    }
    Ok(format!(
        "offline: {} complete at commit {}",
        source.repo, pinned.commit
    ))
}

fn api(weights: &Path, opts: &Options) -> Result<hf_hub::api::sync::Api> {
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(weights.join(CACHE_DIR))
        .with_retries(5)
        .with_progress(false)
        .with_endpoint(endpoint(opts))
        .with_user_agent("triposg", env!("CARGO_PKG_VERSION"));
    if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
        builder = builder.with_token(Some(token));
    }
    Ok(builder.build()?)
}

fn endpoint(opts: &Options) -> String {
    opts.endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
}

fn listing(repo: &ApiRepo, source: &Source, revision: &str, endpoint: &str) -> Result<Listing> {
    let response = repo.info_request().query("blobs", "true").call();
    let mut response = response.map_err(|e| match e {
        ureq::Error::StatusCode(401 | 403) => anyhow::anyhow!(
            "{endpoint} refused access to {} ({e}): set HF_TOKEN to a token of an account that accepted the model's terms",
            source.repo
        ),
        ureq::Error::StatusCode(404) => anyhow::anyhow!(
            "{endpoint} has no {} at revision {revision}: if the lock file pins a commit that is gone, run `triposg download --update`",
            source.repo
        ),
        e => anyhow::anyhow!(
            "cannot reach {endpoint} to list {} ({e}). Check the network, set HF_ENDPOINT to a mirror, or download by hand: {}",
            source.repo,
            manual_command(source, Path::new(source.folder))
        ),
    })?;
    response
        .body_mut()
        .read_json::<Listing>()
        .with_context(|| format!("unexpected answer from {endpoint} listing {}", source.repo))
}

fn fetch_repo(
    weights: &Path,
    opts: &Options,
    source: &Source,
    dest: &Path,
    pinned: Option<&LockedRepo>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<LockedRepo> {
    let api = api(weights, opts)?;
    let revision = pinned.map_or("main", |p| p.commit.as_str());
    let listing = listing(
        &api.repo(Repo::with_revision(
            source.repo.into(),
            RepoType::Model,
            revision.into(),
        )),
        source,
        revision,
        &endpoint(opts),
    )?;
    // Pin the transfers to the listed commit even when the branch moves meanwhile.
    let repo = api.repo(Repo::with_revision(
        source.repo.into(),
        RepoType::Model,
        listing.sha.clone(),
    ));
    let mut files = BTreeMap::new();
    let wanted: Vec<&Sibling> = listing
        .siblings
        .iter()
        .filter(|s| (source.wanted)(&s.rfilename))
        .collect();
    if wanted.is_empty() {
        bail!(
            "{} at commit {} has none of the files the app needs: is this the right repository?",
            source.repo,
            listing.sha
        );
    }
    on_progress(Progress::Repo {
        repo: source.repo.into(),
        commit: listing.sha.clone(),
        files: wanted.len(),
        bytes: wanted.iter().filter_map(|s| s.expected_size()).sum(),
    });
    for sibling in wanted {
        let path = dest.join(&sibling.rfilename);
        let known = pinned.and_then(|p| p.files.get(&sibling.rfilename));
        let locked = fetch_file(&repo, sibling, &path, known, on_progress)
            .with_context(|| format!("{} {}", source.repo, sibling.rfilename))?;
        files.insert(sibling.rfilename.clone(), locked);
    }
    Ok(LockedRepo {
        commit: listing.sha,
        files,
    })
}

impl Sibling {
    fn expected_size(&self) -> Option<u64> {
        self.lfs.as_ref().map(|l| l.size).or(self.size)
    }
}

/// hf-hub's progress calls, as [`Progress::Bytes`] events at most every 1/200 of the file.
struct ByteEvents<'a> {
    file: String,
    done: u64,
    total: u64,
    reported: u64,
    on_progress: &'a mut dyn FnMut(Progress),
}

impl ByteEvents<'_> {
    fn report(&mut self) {
        self.reported = self.done;
        (self.on_progress)(Progress::Bytes {
            file: self.file.clone(),
            done: self.done,
            total: self.total,
        });
    }
}

impl HubProgress for ByteEvents<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        self.report();
    }

    fn update(&mut self, size: usize) {
        self.done = (self.done + size as u64).min(self.total);
        if self.done - self.reported >= (self.total / 200).max(1 << 20) {
            self.report();
        }
    }

    fn finish(&mut self) {
        self.done = self.total;
        self.report();
    }
}

/// Puts one file in place unless an identical one is there already.
fn fetch_file(
    repo: &ApiRepo,
    sibling: &Sibling,
    path: &Path,
    known: Option<&LockedFile>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<LockedFile> {
    let file = sibling.rfilename.clone();
    let expected_size = sibling.expected_size();
    let expected_sha = sibling.lfs.as_ref().map(|l| l.sha256.as_str());
    if let Ok(meta) = fs::metadata(path) {
        let size_ok = expected_size.is_none_or(|s| s == meta.len());
        // A file the lock already vouches for (same size and hub hash) is not hashed again:
        // rehashing 7 GB on every container start would cost half a minute.
        if let Some(known) = known.filter(|k| {
            size_ok && k.size == meta.len() && expected_sha.is_none_or(|s| s == k.sha256)
        }) {
            on_progress(Progress::Present {
                file,
                bytes: known.size,
                hashed: false,
            });
            return Ok(known.clone());
        }
        if size_ok {
            let sha = sha256_file(path)?;
            if expected_sha.is_none_or(|s| s == sha) {
                on_progress(Progress::Present {
                    file,
                    bytes: meta.len(),
                    hashed: true,
                });
                return Ok(LockedFile {
                    size: meta.len(),
                    sha256: sha,
                });
            }
        }
        on_progress(Progress::Replacing { file: file.clone() });
    }
    let start = Instant::now();
    on_progress(Progress::Started {
        file: file.clone(),
        bytes: expected_size,
    });
    let bytes = ByteEvents {
        file: file.clone(),
        done: 0,
        total: 0,
        reported: 0,
        on_progress: &mut *on_progress,
    };
    let cached = repo
        .download_with_progress(&file, bytes)
        .context("download failed (run the command again to resume)")?;
    // hf-hub returns a snapshot symlink into its blob store; the blob is what we move.
    let blob = fs::canonicalize(&cached)?;
    let size = fs::metadata(&blob)?.len();
    let sha = sha256_file(&blob)?;
    if expected_size.is_some_and(|s| s != size) || expected_sha.is_some_and(|s| s != sha) {
        fs::remove_file(&blob)?;
        bail!(
            "the downloaded file does not match the hub's listing (size {size}, sha256 {sha}; expected {:?} / {:?}): it was deleted, run the command again",
            expected_size,
            expected_sha
        );
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(&blob, path).with_context(|| format!("moving into {}", path.display()))?;
    let _ = fs::remove_file(&cached);
    on_progress(Progress::Finished {
        file,
        bytes: size,
        seconds: start.elapsed().as_secs_f64(),
    });
    Ok(LockedFile { size, sha256: sha })
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// `1.2 GB`: sizes as the messages and the CLI show them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn read_lock(path: &Path) -> Result<Lock> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a valid lock file: delete it to resolve the newest weights",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_lock(path: &Path, lock: &Lock) -> Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(lock)?)?;
    fs::rename(&tmp, path)?;
    Ok(())
}
