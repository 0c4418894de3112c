//! Prints the check result and rendered files of spec entries:
//! `cargo run -p kernel-spec --release --example render -- [NAME_SUBSTRING] [--files]`.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let filter = args.next().unwrap_or_default();
    let show_files = std::env::args().any(|a| a == "--files");
    let specs = match kernel_spec::load_dir(&root.join("kernel-specs")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for s in specs.iter().filter(|s| s.name.contains(&filter)) {
        match kernel_spec::check(s) {
            Ok(u) => println!(
                "{:28} {:4} {:5} cores {:2} core {:6} B mem {:7} B dma {:3} ddr {:10} B est {:9.1} us",
                s.name,
                s.device,
                s.dtype,
                u.cores,
                u.core_data_bytes,
                u.memtile_bytes,
                u.dma_channels,
                u.ddr_bytes,
                kernel_spec::estimate_us(s)
            ),
            Err(e) => println!("{e}"),
        }
        if show_files {
            match kernel_spec::render(s, &root.join("templates")) {
                Ok(r) => {
                    for (name, text) in &r.files {
                        println!("===== {name}\n{text}");
                    }
                    println!("===== inputs: {:?}", r.inputs);
                }
                Err(e) => println!("{e}"),
            }
        }
    }
}
