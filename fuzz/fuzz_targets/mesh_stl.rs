//! The STL importer: any bytes give a usable mesh or an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    triposg_fuzz::check_import(triposg_mesh::io::stl::from_bytes(data));
});
