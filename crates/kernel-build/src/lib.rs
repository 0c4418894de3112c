//! Content-hashed, cached, atomic kernel builds: render, aiecc/Peano, manifest.
