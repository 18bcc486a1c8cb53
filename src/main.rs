fn main() {
    std::process::exit(nightcrier::cli::main());
}
