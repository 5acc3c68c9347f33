//! Temporary runner of the kernel benchmark until `fp8q bench` lands.
fn main() {
    let mut args = quant_host::bench::BenchArgs::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = it.next().map(Into::into),
            _ => {}
        }
    }
    if let Err(e) = quant_host::bench::run(&args) {
        eprintln!("fp8-bench: {e}");
        std::process::exit(1);
    }
}
