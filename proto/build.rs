fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "schemas/strata/envelope.proto",
        "schemas/strata/identity.proto",
        "schemas/strata/image.proto",
        "schemas/strata/compute.proto",
        "schemas/strata/volume.proto",
        "schemas/strata/network.proto",
        "schemas/strata/object.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    prost_build::Config::new()
        // Maps decode as ordered maps, so folds and projections of them are canonical.
        .btree_map([".strata.object"])
        // Service events serialize to JSON for tools (`strata log dump`, the audit API); the envelope does not.
        .type_attribute(".strata.identity", "#[derive(serde::Serialize)]")
        .type_attribute(".strata.image", "#[derive(serde::Serialize)]")
        .type_attribute(".strata.compute", "#[derive(serde::Serialize)]")
        .type_attribute(".strata.volume", "#[derive(serde::Serialize)]")
        .type_attribute(".strata.network", "#[derive(serde::Serialize)]")
        .type_attribute(".strata.object", "#[derive(serde::Serialize)]")
        .compile_protos(&files, &["schemas"])?;
    Ok(())
}
