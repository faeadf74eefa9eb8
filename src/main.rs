fn main() -> std::process::ExitCode {
    cutover::app::main()
}
