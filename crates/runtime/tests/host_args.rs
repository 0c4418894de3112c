//! The runtime's host layouts against what the rendered designs declare: every runtime-sequence
//! argument (name, element count, element type), in order, for every entry of the repository's
//! kernel-specs/ and the small test entries.

mod support;

use npu_runtime::host::Layout;
use npu_runtime::kernel_spec::{self, KernelSpec};
use support::*;

fn check(spec: &KernelSpec) -> Result<(), String> {
    let layout = Layout::of(spec).map_err(|e| e.to_string())?;
    let rendered =
        kernel_spec::render(spec, &root().join("templates")).map_err(|e| e.to_string())?;
    let design = &rendered
        .files
        .iter()
        .find(|(n, _)| n == "design.mlir")
        .expect("design.mlir is rendered")
        .1;
    let declared = design_args(design);
    let packed: Vec<(String, usize, String)> = layout
        .args()
        .iter()
        .map(|a| (a.name.clone(), a.len, a.elem.mlir().to_string()))
        .collect();
    if declared != packed {
        return Err(format!(
            "{}: the design declares {declared:?}, the runtime packs {packed:?}",
            spec.origin()
        ));
    }
    Ok(())
}

#[test]
fn layouts_match_every_rendered_design() {
    let mut specs = kernel_spec::load_dir(&root().join("kernel-specs")).expect("kernel-specs/");
    specs.extend(specs_of_tests());
    let failures: Vec<String> = specs.iter().filter_map(|s| check(s).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} entries:\n{}",
        failures.len(),
        specs.len(),
        failures.join("\n")
    );
}

fn specs_of_tests() -> Vec<KernelSpec> {
    support::specs()
}
