fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["schemas/strata/envelope.proto", "schemas/strata/identity.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    prost_build::Config::new().compile_protos(&files, &["schemas"])?;
    Ok(())
}
