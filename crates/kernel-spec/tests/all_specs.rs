//! Every entry in the project's kernel-specs/ passes `check` and renders with templates/.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_entry_checks_and_renders() {
    let specs = kernel_spec::load_dir(&root().join("kernel-specs")).expect("kernel-specs/ loads");
    assert!(!specs.is_empty());
    let mut failures = Vec::new();
    let mut count: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &specs {
        *count
            .entry((s.family.to_string(), s.device.to_string()))
            .or_default() += 1;
        let use_ = match kernel_spec::check(s) {
            Ok(u) => u,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let lim = s.device.limits();
        assert!(use_.core_data_bytes <= lim.core_data_bytes, "{}", s.name);
        assert!(use_.memtile_bytes <= lim.memtile_bytes, "{}", s.name);
        assert!(use_.cores >= 1 && use_.cores <= lim.cores(), "{}", s.name);
        let est = kernel_spec::estimate_us(s);
        assert!(est.is_finite() && est > 0.0, "{}: estimate {est}", s.name);
        match kernel_spec::render(s, &root().join("templates")) {
            Ok(r) => {
                assert_eq!(r.files[0].0, "design.mlir", "{}", s.name);
                assert!(
                    r.files[0].1.contains(&format!("aie.device({})", s.device)),
                    "{}",
                    s.name
                );
                assert!(!r.kernel_files().is_empty(), "{}: no kernel C++", s.name);
                assert!(!r.inputs.is_empty());
                if let Err(e) = lint_design(&r.files[0].1) {
                    failures.push(format!("{}: design.mlir: {e}", s.name));
                }
                for (name, text) in &r.files {
                    // Strict undefined variables make a typo an error; also catch stray Jinja.
                    assert!(
                        !text.contains("{{") && !text.contains("%}") && !text.contains("{#"),
                        "{}: {name} has unrendered Jinja",
                        s.name
                    );
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    eprintln!("entries per (family, device): {count:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rendering_is_deterministic_and_lists_its_inputs() {
    let specs = kernel_spec::load_dir(&root().join("kernel-specs")).unwrap();
    let templates = root().join("templates");
    for s in specs.iter().step_by(7) {
        let a = kernel_spec::render(s, &templates).unwrap();
        let b = kernel_spec::render(s, &templates).unwrap();
        assert_eq!(a, b, "{}", s.name);
        let family_dir = templates.join(s.family.as_str());
        assert!(
            a.inputs.iter().any(|p| p.starts_with(&family_dir)),
            "{}: {:?}",
            s.name,
            a.inputs
        );
        for p in &a.inputs {
            assert!(p.is_file(), "{}", p.display());
        }
    }
}

/// A structural lint of a rendered design (no aie-opt here): SSA values are defined once per
/// scope and defined before use; every referenced object FIFO, function and RTP buffer symbol
/// is declared; every FIFO a core acquires is released as often in the same region.
fn lint_design(text: &str) -> Result<(), String> {
    use std::collections::{BTreeMap, BTreeSet};
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut symbols = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("aie.objectfifo @") {
            symbols.insert(ident(rest));
        }
        if let Some(rest) = l.strip_prefix("func.func private @") {
            symbols.insert(ident(rest));
        }
        if let Some(p) = l.find("sym_name = \"") {
            symbols.insert(ident(&l[p + 12..]));
        }
    }
    // Scopes: the device body, each aie.core body, the runtime sequence.
    let mut global: BTreeSet<String> = BTreeSet::new();
    let mut local: Option<BTreeSet<String>> = None;
    let mut balance: BTreeMap<String, i64> = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with("//") || l.is_empty() {
            continue;
        }
        let here = |m: &str| format!("line {}: {m}: {l}", no + 1);
        if l.contains("aie.core(") || l.starts_with("aie.runtime_sequence(") {
            local = Some(BTreeSet::new());
            balance.clear();
        }
        // Uses of %values (before the definition on this line, if any).
        let (lhs, rhs) = match l.split_once(" = ") {
            Some((a, b)) if a.starts_with('%') && !a.contains(' ') => (Some(a), b),
            _ => (None, l),
        };
        let is_def_line = lhs.is_some();
        if l.starts_with("aie.runtime_sequence(") {
            // Arguments are definitions of the sequence scope.
            for part in rhs.split('%').skip(1) {
                local.as_mut().unwrap().insert(ident(part));
            }
        } else if !l.starts_with("scf.for") {
            for part in rhs.split('%').skip(1) {
                let name = ident(part);
                let known =
                    global.contains(&name) || local.as_ref().is_some_and(|s| s.contains(&name));
                if !known {
                    return Err(here(&format!("%{name} used before definition")));
                }
            }
        } else {
            // scf.for %iv = %lb to %ub step %s: the induction variable is a definition.
            let mut parts = rhs.split('%').skip(1);
            let iv = ident(parts.next().unwrap_or(""));
            for part in parts {
                let name = ident(part);
                if !global.contains(&name) && !local.as_ref().is_some_and(|s| s.contains(&name)) {
                    return Err(here(&format!("%{name} used before definition")));
                }
            }
            if !local
                .as_mut()
                .ok_or_else(|| here("loop outside a core"))?
                .insert(iv.clone())
            {
                return Err(here(&format!("%{iv} defined twice")));
            }
        }
        if let Some(lhs) = lhs {
            let name = ident(&lhs[1..]);
            let scope = match local.as_mut() {
                Some(s) => s,
                None => &mut global,
            };
            if !scope.insert(name.clone())
                || (is_def_line && local.is_some() && global.contains(&name))
            {
                return Err(here(&format!("%{name} defined twice")));
            }
        }
        for part in l.split('@').skip(1) {
            let name = ident(part);
            if !name.is_empty()
                && !symbols.contains(&name)
                && !l.starts_with("aie.objectfifo @")
                && !l.starts_with("func.func")
            {
                return Err(here(&format!("@{name} is not declared")));
            }
        }
        for (op, sign) in [
            ("aie.objectfifo.acquire @", 1),
            ("aie.objectfifo.release @", -1),
        ] {
            if let Some(p) = l.find(op) {
                *balance.entry(ident(&l[p + op.len()..])).or_default() += sign;
            }
        }
        if l == "aie.end" {
            if let Some((fifo, n)) = balance.iter().find(|(_, n)| **n != 0) {
                return Err(here(&format!(
                    "@{fifo} acquired {n} more times than released"
                )));
            }
            local = None;
        }
        if l == "}" && local.is_some() && text.lines().nth(no + 1).is_some_and(|n| n.trim() == "}")
        {
            // End of the runtime sequence (its closing brace is followed by the device's).
            local = None;
        }
    }
    Ok(())
}

#[test]
fn the_design_lint_catches_real_mistakes() {
    let ok = "module {\n  aie.device(npu1) {\n    %t = aie.tile(0, 2)\n    %s = aie.tile(0, 0)\n    aie.objectfifo @in(%s, {%t}, 2 : i32) : !aie.objectfifo<memref<16xi32>>\n    %core = aie.core(%t) {\n      %c0 = arith.constant 0 : index\n      %c1 = arith.constant 1 : index\n      scf.for %i = %c0 to %c1 step %c1 {\n        %sv = aie.objectfifo.acquire @in(Consume, 1) : !aie.objectfifosubview<memref<16xi32>>\n        aie.objectfifo.release @in(Consume, 1)\n      }\n      aie.end\n    }\n  }\n}\n";
    lint_design(ok).unwrap();
    let twice = ok.replace("%sv = aie", "%c0 = aie");
    assert!(lint_design(&twice)
        .unwrap_err()
        .contains("%c0 defined twice"));
    let undefined = ok.replace("to %c1 step", "to %c9 step");
    assert!(lint_design(&undefined)
        .unwrap_err()
        .contains("%c9 used before definition"));
    let unbalanced = ok.replace("        aie.objectfifo.release @in(Consume, 1)\n", "");
    assert!(lint_design(&unbalanced)
        .unwrap_err()
        .contains("@in acquired 1 more times"));
    let undeclared = ok.replace("acquire @in(", "acquire @inn(");
    assert!(lint_design(&undeclared)
        .unwrap_err()
        .contains("@inn is not declared"));
}

#[test]
fn render_names_the_broken_template_and_lists_includes() {
    let specs = kernel_spec::load_dir(&root().join("kernel-specs")).unwrap();
    let ln = specs.iter().find(|s| s.name == "base_dec_ln_npu1").unwrap();
    let good = kernel_spec::render(ln, &root().join("templates")).unwrap();
    let names: Vec<String> = good
        .inputs
        .iter()
        .map(|p| {
            p.strip_prefix(root().join("templates"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "common/seq_ops.mlir.jinja",
            "common/vec_math.h.jinja",
            "layernorm/design.mlir.jinja",
            "layernorm/layernorm.cc.jinja"
        ]
    );
    // A copy of the templates with a typo in one variable: strict undefined behaviour makes it
    // an error that names the template.
    let dir = std::env::temp_dir().join(format!("kernel-spec-tmpl-{}", std::process::id()));
    for sub in ["layernorm", "common"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root().join("templates").join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    let cc = dir.join("layernorm/layernorm.cc.jinja");
    let text = std::fs::read_to_string(&cc)
        .unwrap()
        .replace("{{ f.dim }}", "{{ f.dimm }}");
    std::fs::write(&cc, text).unwrap();
    let err = kernel_spec::render(ln, &dir).unwrap_err().to_string();
    assert!(err.contains("layernorm.cc.jinja"), "{err}");
    assert!(err.contains("entry \"base_dec_ln_npu1\""), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
