//! End-to-end behaviour of `kernel_build::build` on temp trees.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Instant;

use common::*;
use kernel_build::stamp::verify_dir;
use kernel_build::{Action, ArtifactStatus, BuildError, Prune};

fn all_built(r: &kernel_build::BuildReport) -> bool {
    r.kernels
        .iter()
        .all(|k| k.action == Action::Built(ArtifactStatus::Emitted))
}

/// Every kernel directory the manifest names verifies against its stamp.
fn assert_manifest_valid(out: &Path, expect: usize) {
    let m = load_manifest(out);
    assert_eq!(m.kernels.len(), expect);
    let root = out.parent().unwrap();
    for k in &m.kernels {
        let dir = root.join(&k.dir);
        verify_dir(&dir, &k.name, &k.hash).unwrap_or_else(|e| panic!("{}: {e}", k.name));
        assert!(dir.join(&k.artifacts.design).is_file());
        for f in &k.artifacts.kernels {
            assert!(dir.join(f).is_file(), "{}", dir.join(f).display());
        }
    }
}

/// (path, modification time) of every file under `dir`.
fn snapshot(dir: &Path) -> BTreeSet<(String, std::time::SystemTime)> {
    let mut s = BTreeSet::new();
    fn walk(d: &Path, s: &mut BTreeSet<(String, std::time::SystemTime)>) {
        for e in fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, s);
            } else if p.file_name().unwrap() != "manifest.json" && p.file_name().unwrap() != ".lock"
            {
                s.insert((
                    p.display().to_string(),
                    fs::metadata(&p).unwrap().modified().unwrap(),
                ));
            }
        }
    }
    walk(dir, &mut s);
    s
}

#[test]
fn second_run_rebuilds_nothing() {
    let t = real_tree();
    let opts = t.opts();
    let t0 = Instant::now();
    let first = build_ok(&opts);
    let cold = t0.elapsed();
    assert!(!first.kernels.is_empty());
    assert!(all_built(&first), "{first}");
    assert_manifest_valid(&t.out(), first.kernels.len());
    let before = snapshot(&t.out());

    let t1 = Instant::now();
    let second = build_ok(&opts);
    let warm = t1.elapsed();
    assert_eq!(second.up_to_date(), first.kernels.len(), "{second}");
    assert_eq!(second.built() + second.restored(), 0);
    // Unchanged kernels cost only their hash: nothing was even rendered.
    assert_eq!(second.rendered, 0);
    // Nothing under generated/ but the manifest was rewritten.
    assert_eq!(before, snapshot(&t.out()));
    assert_manifest_valid(&t.out(), first.kernels.len());
    eprintln!(
        "{} kernels: cold {:.3}s, warm {:.3}s",
        first.kernels.len(),
        cold.as_secs_f64(),
        warm.as_secs_f64()
    );
}

#[test]
fn a_new_toml_entry_adds_exactly_one_kernel() {
    let t = real_tree();
    let opts = t.opts();
    let first = build_ok(&opts);
    let n = first.kernels.len();
    let toml = fs::read_dir(t.specs())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap() == "matmul.toml")
        .expect("kernel-specs/matmul.toml exists");
    let entry = MATMUL_TOML
        .split("[[kernel]]")
        .nth(1)
        .unwrap()
        .replace("\"mm_a\"", "\"test_added_shape\"");
    let mut text = fs::read_to_string(&toml).unwrap();
    text.push_str("\n[[kernel]]");
    text.push_str(&entry);
    fs::write(&toml, text).unwrap();

    let second = build_ok(&opts);
    assert_eq!(second.kernels.len(), n + 1);
    let built = names_with(&second, |a| matches!(a, Action::Built(_)));
    assert_eq!(built, vec!["test_added_shape".to_string()], "{second}");
    assert_eq!(second.up_to_date(), n);
    let m = load_manifest(&t.out());
    assert_eq!(m.kernels.len(), n + 1);
    let added = m
        .get("test_added_shape")
        .expect("new kernel in the manifest");
    assert_eq!(added.family, kernel_spec::Family::Matmul);
    assert_manifest_valid(&t.out(), n + 1);
}

/// Which kernels read each template, according to the renderer itself.
fn template_users(t: &Tree) -> Vec<(std::path::PathBuf, BTreeSet<String>)> {
    let specs = kernel_spec::load_dir(&t.specs()).unwrap();
    let mut users: std::collections::BTreeMap<std::path::PathBuf, BTreeSet<String>> =
        Default::default();
    for s in &specs {
        for p in kernel_spec::render(s, &t.templates()).unwrap().inputs {
            users.entry(p).or_default().insert(s.name.clone());
        }
    }
    users.into_iter().collect()
}

#[test]
fn editing_one_template_rebuilds_only_its_users() {
    let t = real_tree();
    let opts = t.opts();
    let first = build_ok(&opts);
    let all: BTreeSet<String> = first.kernels.iter().map(|k| k.name.clone()).collect();
    // The template with the fewest users (but some) makes the sharpest test.
    let (template, users) = template_users(&t)
        .into_iter()
        .filter(|(_, u)| !u.is_empty())
        .min_by_key(|(_, u)| u.len())
        .unwrap();
    assert!(
        users.len() < all.len(),
        "every kernel uses {}",
        template.display()
    );
    // A template comment: the rendered output stays the same, the template bytes do not.
    let mut text = fs::read_to_string(&template).unwrap();
    text.push_str("{# edited by the kernel-build tests #}\n");
    fs::write(&template, text).unwrap();

    let second = build_ok(&opts);
    let built: BTreeSet<String> = names_with(&second, |a| matches!(a, Action::Built(_)))
        .into_iter()
        .collect();
    assert_eq!(built, users, "edited {}", template.display());
    assert_eq!(second.up_to_date(), all.len() - users.len());
    assert_manifest_valid(&t.out(), all.len());
}

#[test]
fn editing_a_shared_include_rebuilds_its_family_only() {
    let t = small_tree();
    let opts = t.opts();
    assert!(all_built(&build_ok(&opts)));
    fs::write(
        t.templates().join("common/header.jinja"),
        "// edited header\n",
    )
    .unwrap();
    let r = build_ok(&opts);
    assert_eq!(
        names_with(&r, |a| matches!(a, Action::Built(_))),
        vec!["mm_a", "mm_b"]
    );
    assert_eq!(names_with(&r, |a| a == Action::UpToDate), vec!["ln_a"]);
    let m = load_manifest(&t.out());
    let dir = t.root().join(&m.get("mm_a").unwrap().dir);
    assert!(fs::read_to_string(dir.join("design.mlir"))
        .unwrap()
        .starts_with("// edited header"));
}

#[test]
fn hashes_do_not_depend_on_where_the_tree_is() {
    let a = small_tree();
    let b = small_tree();
    let ha = hashes_ok(&a.opts());
    let hb = hashes_ok(&b.opts());
    assert_eq!(ha.kernels, hb.kernels);
    assert_eq!(ha.combined, hb.combined);
    assert_eq!(ha.kernels.len(), 3);
    assert_eq!(ha.toolchain, "emit-only");
    // The listing is `name hash` lines and a combined key.
    let text = ha.to_string();
    let (_, mm_a) = ha.kernels.iter().find(|(n, _)| n == "mm_a").unwrap();
    assert!(text.lines().any(|l| l == format!("mm_a {mm_a}")), "{text}");
    assert!(text.ends_with(&format!("combined {}", ha.combined)));
    // A spec change changes that kernel's hash and the combined key, nothing else.
    let toml = b.specs().join("layernorm.toml");
    let text = fs::read_to_string(&toml).unwrap().replace("1e-5", "1e-6");
    fs::write(&toml, text).unwrap();
    let hb2 = hashes_ok(&b.opts());
    assert_ne!(ha.combined, hb2.combined);
    for ((n1, h1), (n2, h2)) in ha.kernels.iter().zip(&hb2.kernels) {
        assert_eq!(n1, n2);
        assert_eq!(h1 == h2, n1 != "ln_a", "{n1}");
    }
    // print-hashes builds nothing.
    assert!(!a.out().exists());
}

#[test]
fn warm_cache_builds_nothing_and_corrupt_entries_are_rebuilt() {
    let t = small_tree();
    let cache = t.root().join("cache");
    let mut opts = t.opts();
    opts.cache_dir = Some(cache.clone());
    let first = build_ok(&opts);
    assert!(all_built(&first));
    assert_eq!(first.restored(), 0);
    let hash = |name: &str| {
        first
            .kernels
            .iter()
            .find(|k| k.name == name)
            .unwrap()
            .hash
            .clone()
    };
    for k in &first.kernels {
        verify_dir(&cache.join(&k.name).join(&k.hash), &k.name, &k.hash).unwrap();
    }

    // Fresh output dir, warm cache: everything restored, nothing built.
    fs::remove_dir_all(t.out()).unwrap();
    let warm = build_ok(&opts);
    assert_eq!(warm.restored(), 3, "{warm}");
    assert_eq!(warm.built(), 0);
    assert_manifest_valid(&t.out(), 3);
    assert!(warm.to_string().contains("3 restored from cache"));

    // Corrupt the cache: truncate a file of mm_a; give mm_b's entry the contents of ln_a's (a
    // wrong-hash entry); truncate ln_a's stamp.
    let mm_a = cache.join("mm_a").join(hash("mm_a"));
    let f = mm_a.join("design.mlir");
    let len = fs::metadata(&f).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mm_b = cache.join("mm_b").join(hash("mm_b"));
    fs::remove_dir_all(&mm_b).unwrap();
    copy_dir(&cache.join("ln_a").join(hash("ln_a")), &mm_b);
    let ln_stamp = cache.join("ln_a").join(hash("ln_a")).join("stamp.json");
    let stamp_len = fs::metadata(&ln_stamp).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&ln_stamp)
        .unwrap()
        .set_len(stamp_len - 10)
        .unwrap();

    fs::remove_dir_all(t.out()).unwrap();
    let r = build_ok(&opts);
    assert_eq!(r.restored(), 0, "{r}");
    assert_eq!(r.built(), 3, "{r}");
    let notes = r.notes.join("\n");
    assert!(
        notes.contains("corrupted") && notes.contains("mm_a"),
        "{notes}"
    );
    assert!(notes.contains("expected mm_b hash"), "{notes}");
    assert!(notes.contains("not a valid stamp"), "{notes}");
    // What was built is right, and the cache was repaired with it.
    assert_manifest_valid(&t.out(), 3);
    for k in &r.kernels {
        verify_dir(&cache.join(&k.name).join(&k.hash), &k.name, &k.hash).unwrap();
        let built = fs::read(t.out().join(&k.name).join(&k.hash).join("design.mlir")).unwrap();
        let cached = fs::read(cache.join(&k.name).join(&k.hash).join("design.mlir")).unwrap();
        assert_eq!(built, cached);
    }
    // And the repaired cache serves the next fresh build.
    fs::remove_dir_all(t.out()).unwrap();
    assert_eq!(build_ok(&opts).restored(), 3);
}

#[test]
fn corrupted_output_dir_is_rebuilt() {
    let t = small_tree();
    let opts = t.opts();
    let first = build_ok(&opts);
    let k = &first.kernels[0];
    let f = t.out().join(&k.name).join(&k.hash).join("design.mlir");
    fs::write(&f, "garbage").unwrap();
    let r = build_ok(&opts);
    assert_eq!(
        names_with(&r, |a| matches!(a, Action::Built(_))),
        vec![k.name.clone()]
    );
    assert!(
        r.notes.iter().any(|n| n.contains("corrupted")),
        "{:?}",
        r.notes
    );
    assert_manifest_valid(&t.out(), 3);
}

#[test]
fn missing_toolchain_without_emit_only_is_a_clear_error() {
    let t = small_tree();
    let mut opts = t.opts();
    opts.emit_only = false;
    let err = kernel_build::build(&opts).unwrap_err();
    assert!(matches!(err, BuildError::ToolchainMissing(_)), "{err}");
    let msg = err.to_string();
    for want in [
        "MLIR_AIE_INSTALL_DIR",
        "PEANO_INSTALL_DIR",
        "mlir_aie",
        "llvm-aie",
        "--emit-only",
        "aiecc",
    ] {
        assert!(msg.contains(want), "message lacks {want:?}:\n{msg}");
    }
    // Nothing was written.
    assert!(!t.out().exists());
}

#[test]
fn every_spec_problem_is_reported() {
    let t = small_tree();
    // Two broken entries in two files: a shape that does not divide, too many columns.
    let mm = MATMUL_TOML.replace("m = 256\nk = 256", "m = 250\nk = 256");
    fs::write(t.specs().join("matmul.toml"), mm).unwrap();
    let ln = LAYERNORM_TOML.replace("columns = 1", "columns = 9");
    fs::write(t.specs().join("layernorm.toml"), ln).unwrap();
    let err = kernel_build::build(&t.opts()).unwrap_err();
    let BuildError::Spec(problems) = &err else {
        panic!("expected spec problems, got {err}")
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("entry \"mm_a\"")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("entry \"ln_a\"")),
        "{problems:?}"
    );
    assert!(err.to_string().contains("2 problem(s)"));
    assert!(!t.out().exists());
}

#[test]
fn concurrent_builds_do_not_corrupt_the_tree() {
    let t = real_tree();
    let opts = t.opts();
    let n = std::thread::scope(|s| {
        let a = s.spawn(|| build_ok(&opts));
        let b = s.spawn(|| build_ok(&opts));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a.kernels.len(), b.kernels.len());
        // Each kernel was built by exactly one of the two runs.
        for (ka, kb) in a.kernels.iter().zip(&b.kernels) {
            let built = |x: Action| matches!(x, Action::Built(_));
            assert!(
                built(ka.action) ^ built(kb.action),
                "{} {:?} {:?}",
                ka.name,
                ka.action,
                kb.action
            );
        }
        a.kernels.len()
    });
    assert_manifest_valid(&t.out(), n);
    // No staging left-overs.
    let tmp: Vec<_> = fs::read_dir(t.out())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(tmp.is_empty());
    // A third run finds everything in place.
    assert_eq!(build_ok(&opts).built(), 0);
}

#[test]
fn filter_builds_a_subset_and_prune_removes_old_hashes() {
    let t = small_tree();
    let mut opts = t.opts();
    opts.filter = Some("mm_".to_string());
    let r = build_ok(&opts);
    assert_eq!(names_with(&r, |_| true), vec!["mm_a", "mm_b"]);
    assert_eq!(load_manifest(&t.out()).kernels.len(), 2);
    let old_hash = r.kernels[0].hash.clone();

    opts.filter = None;
    fs::write(t.templates().join("matmul/mm.cc.jinja"), "// v2\n").unwrap();
    let r = build_ok(&opts);
    assert_eq!(r.built(), 3);
    assert!(
        t.out().join("mm_a").join(&old_hash).is_dir(),
        "kept without --prune"
    );

    opts.prune = Prune::KeepNewest(0);
    let r = build_ok(&opts);
    assert_eq!(r.up_to_date(), 3);
    assert!(!t.out().join("mm_a").join(&old_hash).exists());
    assert!(r.notes.iter().any(|n| n.contains("pruned")));
    assert_manifest_valid(&t.out(), 3);

    // A kernel removed from the specs loses its directory under --prune.
    fs::remove_file(t.specs().join("layernorm.toml")).unwrap();
    let r = build_ok(&opts);
    assert_eq!(r.kernels.len(), 2);
    assert!(!t.out().join("ln_a").exists());
    assert!(
        r.notes.iter().any(|n| n.contains("no longer in the specs")),
        "{:?}",
        r.notes
    );
    assert_manifest_valid(&t.out(), 2);
}

#[test]
fn a_new_template_file_in_a_family_rebuilds_that_family() {
    let t = small_tree();
    let opts = t.opts();
    assert!(all_built(&build_ok(&opts)));
    assert_eq!(build_ok(&opts).rendered, 0);
    fs::write(
        t.templates().join("layernorm/extra.h.jinja"),
        "#pragma once\n",
    )
    .unwrap();
    let r = build_ok(&opts);
    assert_eq!(
        names_with(&r, |a| matches!(a, Action::Built(_))),
        vec!["ln_a"]
    );
    let m = load_manifest(&t.out());
    assert!(m
        .get("ln_a")
        .unwrap()
        .artifacts
        .kernels
        .contains(&"extra.h".to_string()));
}

#[test]
fn a_broken_or_lying_render_index_is_not_trusted() {
    let t = small_tree();
    let opts = t.opts();
    let first = build_ok(&opts);
    let index = t.out().join(".render-index.json");
    // Garbage: ignored, everything re-rendered, nothing rebuilt.
    fs::write(&index, "{ not json").unwrap();
    let r = build_ok(&opts);
    assert_eq!((r.rendered, r.up_to_date()), (3, 3));
    // A wrong hash for mm_a: its directory is missing, so it is rendered, and the fresh render's
    // hash (the real one) is found up to date.
    let text = fs::read_to_string(&index).unwrap();
    let h = &first
        .kernels
        .iter()
        .find(|k| k.name == "mm_a")
        .unwrap()
        .hash;
    fs::write(&index, text.replace(h.as_str(), &"0".repeat(64))).unwrap();
    let r = build_ok(&opts);
    assert_eq!(r.up_to_date(), 3, "{r}");
    assert_eq!(r.rendered, 1);
    assert_eq!(
        &r.kernels.iter().find(|k| k.name == "mm_a").unwrap().hash,
        h
    );
    assert_manifest_valid(&t.out(), 3);
}
