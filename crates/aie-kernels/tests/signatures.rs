//! Every `func.func private` declaration of every rendered design in kernel-specs/ matches the
//! model's signature.

use std::path::PathBuf;

use aie_kernels::library_for;
use kernel_spec::Family;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (symbol, argument types) of each private function declaration in a design.
fn declarations(design: &str) -> Vec<(String, Vec<String>)> {
    design
        .lines()
        .filter_map(|l| l.trim().strip_prefix("func.func private @"))
        .map(|rest| {
            let open = rest.find('(').expect("declaration has arguments");
            let close = rest[open..].find(')').expect("closing parenthesis") + open;
            let args = rest[open + 1..close]
                .split(", ")
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            (rest[..open].to_string(), args)
        })
        .collect()
}

#[test]
fn every_declared_function_has_a_model_with_its_signature() {
    let specs = kernel_spec::load_dir(&root().join("kernel-specs")).expect("kernel-specs load");
    let mut checked = 0;
    for spec in &specs {
        let rendered = kernel_spec::render(spec, &root().join("templates")).expect("renders");
        let design = &rendered.files[0].1;
        let lib = library_for(spec).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        let decls = declarations(design);
        assert!(!decls.is_empty(), "{}: no declarations found", spec.name);
        for (name, args) in &decls {
            let f = lib.get(name).unwrap_or_else(|| {
                panic!(
                    "{}: the design calls @{name}, which has no model",
                    spec.name
                )
            });
            let sig: Vec<String> = f.signature().iter().map(ToString::to_string).collect();
            assert_eq!(&sig, args, "{}: @{name}", spec.name);
            checked += 1;
        }
        // Every model is declared, except attn_params until the attention template declares it.
        for name in lib.names() {
            assert!(
                decls.iter().any(|(d, _)| d == name) || name == "attn_params",
                "{}: model {name} is not declared by the design",
                spec.name
            );
        }
        if spec.family == Family::Matmul {
            assert!(lib.get("epilogue_0").is_some());
        }
    }
    assert!(checked > 50, "only {checked} declarations checked");
}
