//! The nginx configuration of docs/guides/nginx.md, made whole for one run.
//! The conformance column (`gateway.rs`) and `cargo xtask bench-gateway`
//! both run it; xtask includes this file by path, so it uses only `std`.

use std::path::Path;

/// The ```nginx block of docs/guides/nginx.md: what goes inside `http { }`.
pub fn guide() -> Result<String, String> {
    // Both crates that use this file sit one level below the workspace root.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/guides/nginx.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let start = text.find("```nginx\n").ok_or("docs/guides/nginx.md has no ```nginx block")? + "```nginx\n".len();
    let len = text[start..].find("```").ok_or("docs/guides/nginx.md: the ```nginx block does not end")?;
    Ok(text[start..start + len].to_owned())
}

/// `http_block` (the guide's, or another written the same way: `listen 80`,
/// agx-server on `127.0.0.1:8080`, the service on `127.0.0.1:3000`) with this
/// run's addresses, inside a whole configuration that keeps every file under
/// `dir`.
pub fn for_run(http_block: &str, dir: &Path, port: u16, agx: &str, upstream: &str) -> String {
    let body = http_block
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", agx)
        .replace("127.0.0.1:3000", upstream);
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 512; }}\nhttp {{\n    access_log off;\n\
         client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{body}}}\n"
    )
}

/// Stops an nginx started in the foreground (`daemon off`): `SIGTERM` to
/// the master, which stops its workers, then waits for it. A plain kill
/// (`SIGKILL`) would leave the workers running, still bound to the port
/// and serving the old configuration.
pub fn stop(master: &mut std::process::Child) {
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &master.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !terminated {
        let _ = master.kill();
    }
    let _ = master.wait();
}

/// Starts `nginx` (the program, perhaps under a wrapper such as `taskset`)
/// on the configuration `conf`, with `dir` as its prefix, silent: what it
/// has to say goes to `dir/error.log`.
pub fn spawn(mut nginx: std::process::Command, dir: &Path, conf: &Path) -> Result<std::process::Child, String> {
    nginx
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("start nginx: {e}"))
}
