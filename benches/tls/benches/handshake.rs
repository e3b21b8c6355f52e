//! Client-side CPU of one full TLS 1.3 handshake, rustls on aws-lc-rs vs on ring,
//! as the Lambda's AWS SDK client does it toward DynamoDB; and the cold-start cost
//! of building the SDK's HTTPS connector (root store included) with each provider.
//!
//! The handshakes run in memory: a client and a server connection exchange their
//! TLS records through a buffer, no sockets. The server presents a chain shaped
//! like DynamoDB's: an RSA-2048 leaf signed by an RSA-2048 intermediate, signed by
//! an RSA-2048 root that the client trusts. Only the client's calls are timed, with
//! the thread's CPU clock (so preemption by other processes does not count).
//!
//! `cd benches/tls && cargo bench` (env: HANDSHAKES=2000 per case; needs `openssl`
//! on PATH for the RSA keys). The cold-start part re-runs this binary in fresh
//! processes (env TLSBENCH_COLD=awslc|ring). aws-lc is built as the project builds
//! it (`.cargo/config.toml`); `AWS_LC_SYS_NO_JITTER_ENTROPY=0 cargo bench` measures
//! the crate's default, with CPU-jitter seeding.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
};

const HOST: &str = "dynamodb.us-east-1.amazonaws.com";

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A fresh RSA-2048 key (PKCS#8 PEM) from the openssl command line tool.
fn rsa_key() -> rcgen::KeyPair {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl on PATH");
    assert!(out.status.success(), "openssl genpkey failed");
    rcgen::KeyPair::from_pem(std::str::from_utf8(&out.stdout).unwrap()).unwrap()
}

struct Pki {
    root: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    };
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::OrganizationName, "Bench");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    };
    let root_key = rsa_key();
    let root = ca("Bench Root CA 1").self_signed(&root_key).unwrap();
    let inter_key = rsa_key();
    let inter = ca("Bench RSA 2048 M01")
        .signed_by(&inter_key, &root, &root_key)
        .unwrap();
    let leaf_key = rsa_key();
    let mut lp = CertificateParams::new(vec![
        HOST.to_string(),
        "dynamodb.us-east-1.api.aws".to_string(),
        "*.ddb.us-east-1.amazonaws.com".to_string(),
    ])
    .unwrap();
    lp.distinguished_name.push(DnType::CommonName, HOST);
    lp.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    lp.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaf = lp.signed_by(&leaf_key, &inter, &inter_key).unwrap();
    Pki {
        root: root.der().clone(),
        chain: vec![leaf.der().clone(), inter.der().clone()],
        leaf_key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// The cipher suites the SDK's client keeps (aws-smithy-http-client 1.1.9), same order.
fn sdk_suites(base: CryptoProvider) -> CryptoProvider {
    let wanted = [
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let cipher_suites = wanted
        .iter()
        .filter_map(|w| base.cipher_suites.iter().find(|s| s.suite() == *w).copied())
        .collect();
    CryptoProvider {
        cipher_suites,
        ..base
    }
}

fn client_config(provider: CryptoProvider, roots: RootCertStore) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(Arc::new(sdk_suites(provider)))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake full, as the first one after a cold start.
    c.resumption = Resumption::disabled();
    Arc::new(c)
}

fn server_config(provider: CryptoProvider, pki: &Pki) -> Arc<ServerConfig> {
    let mut s = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.leaf_key.clone_key())
        .unwrap();
    s.send_tls13_tickets = 0;
    Arc::new(s)
}

struct One {
    client_ns: u64,
    server_ns: u64,
    group: String,
    suite: String,
}

fn handshake(cc: &Arc<ClientConfig>, sc: &Arc<ServerConfig>) -> One {
    let name = ServerName::try_from(HOST).unwrap();
    let mut client_ns = 0;
    let mut server_ns = 0;

    let t = cpu_ns();
    let mut client = ClientConnection::new(cc.clone(), name).unwrap(); // builds the ClientHello: key shares
    client_ns += cpu_ns() - t;
    let t = cpu_ns();
    let mut server = ServerConnection::new(sc.clone()).unwrap();
    server_ns += cpu_ns() - t;

    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    for _round in 0..10 {
        buf.clear();
        let t = cpu_ns();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        client_ns += cpu_ns() - t;
        if !buf.is_empty() {
            let t = cpu_ns();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets().unwrap();
            }
            server_ns += cpu_ns() - t;
        }

        buf.clear();
        let t = cpu_ns();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        server_ns += cpu_ns() - t;
        if !buf.is_empty() {
            let t = cpu_ns();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets().unwrap(); // certificate chain + CertificateVerify checked here
            }
            client_ns += cpu_ns() - t;
        }

        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            return One {
                client_ns,
                server_ns,
                group: format!(
                    "{:?}",
                    client.negotiated_key_exchange_group().unwrap().name()
                ),
                suite: format!("{:?}", client.negotiated_cipher_suite().unwrap().suite()),
            };
        }
    }
    panic!("handshake did not finish");
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

fn run_case(label: &str, cc: &Arc<ClientConfig>, sc: &Arc<ServerConfig>, n: usize) {
    for _ in 0..n / 10 {
        handshake(cc, sc);
    }
    let mut client = Vec::with_capacity(n);
    let mut server = Vec::with_capacity(n);
    let mut first = None;
    for _ in 0..n {
        let one = handshake(cc, sc);
        client.push(one.client_ns);
        server.push(one.server_ns);
        first.get_or_insert((one.group, one.suite));
    }
    client.sort_unstable();
    server.sort_unstable();
    let (group, suite) = first.unwrap();
    println!(
        "| {label} | {group} | {suite} | {:.0} | {:.0} | {:.0} | {:.0} |",
        percentile(&client, 0.5),
        percentile(&client, 0.1),
        percentile(&client, 0.9),
        percentile(&server, 0.5),
    );
}

/// One fresh process: what the SDK does at cold start, timed step by step.
fn cold(mode: &str) {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let crypto = match mode {
        "awslc" => CryptoMode::AwsLc,
        "ring" => CryptoMode::Ring,
        other => panic!("unknown mode {other}"),
    };
    // 1. The SDK's connector, exactly as aws-smithy-http-client builds it for each
    //    SDK client config: native roots (loaded once per process), provider,
    //    ClientConfig, hyper-rustls connector.
    let (w, c) = (Instant::now(), process_cpu_ns());
    let _connector = aws_smithy_http_client::Connector::builder()
        .tls_provider(Provider::Rustls(crypto.clone()))
        .build();
    let first = (w.elapsed().as_micros(), (process_cpu_ns() - c) / 1000);
    // 2. The same again (the SDK builds one per client / settings): roots now cached.
    let (w, c) = (Instant::now(), process_cpu_ns());
    let _connector2 = aws_smithy_http_client::Connector::builder()
        .tls_provider(Provider::Rustls(crypto))
        .build();
    let second = (w.elapsed().as_micros(), (process_cpu_ns() - c) / 1000);
    // 3. The root store alone (a second load in the same process; the file is in
    //    the page cache).
    let (w, c) = (Instant::now(), process_cpu_ns());
    let res = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (valid, _) = roots.add_parsable_certificates(res.certs);
    let load = (w.elapsed().as_micros(), (process_cpu_ns() - c) / 1000);
    println!(
        "{mode} {} {} {} {} {} {} {valid}",
        first.0, first.1, second.0, second.1, load.0, load.1
    );
}

/// First and second use of the provider's random generator and of each key-exchange
/// group, in a fresh process: where a one-time cost sits.
fn cold_primitives(mode: &str) {
    let p = if mode == "awslc" {
        aws_lc_rs::default_provider()
    } else {
        ring::default_provider()
    };
    let mut out = Vec::new();
    let mut time = |label: &str, f: &mut dyn FnMut()| {
        let t = cpu_ns();
        f();
        out.push(format!("{label}={}", (cpu_ns() - t) / 1000));
    };
    let mut b = [0u8; 32];
    time("rand1", &mut || p.secure_random.fill(&mut b).unwrap());
    time("rand2", &mut || p.secure_random.fill(&mut b).unwrap());
    for g in &p.kx_groups {
        let name = format!("{:?}", g.name());
        time(&format!("{name}.start1"), &mut || drop(g.start().unwrap()));
        time(&format!("{name}.start2"), &mut || drop(g.start().unwrap()));
    }
    // A second thread's first random bytes (tokio runs handshakes on several workers).
    let p2 = p.clone();
    let other = std::thread::spawn(move || {
        let mut b = [0u8; 32];
        let t = cpu_ns();
        p2.secure_random.fill(&mut b).unwrap();
        (cpu_ns() - t) / 1000
    })
    .join()
    .unwrap();
    println!("{mode} {} rand_other_thread={other}", out.join(" "));
}

/// First handshake in a fresh process (cold caches, one-time provider set-up).
fn cold_handshake(mode: &str, pki: &Pki) {
    let mut roots = RootCertStore::empty();
    roots.add(pki.root.clone()).unwrap();
    let sc = server_config(aws_lc_rs::default_provider(), pki);
    let t = cpu_ns();
    let provider = if mode == "awslc" {
        aws_lc_rs::default_provider()
    } else {
        ring::default_provider()
    };
    let cc = client_config(provider, roots);
    let cfg_ns = cpu_ns() - t;
    let one = handshake(&cc, &sc);
    let two = handshake(&cc, &sc);
    println!(
        "{mode} {} {} {}",
        cfg_ns / 1000,
        one.client_ns / 1000,
        two.client_ns / 1000
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(mode) = std::env::var("TLSBENCH_COLD") {
        return cold(&mode);
    }
    if let Ok(mode) = std::env::var("TLSBENCH_COLD_PRIM") {
        return cold_primitives(&mode);
    }
    let n: usize = std::env::var("HANDSHAKES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("tlsbench-pki-{}", std::process::id()));
    if let Ok(mode) = std::env::var("TLSBENCH_COLD_HS") {
        // The parent's PKI, so nothing crypto ran in this process before the timing.
        let pki_dir = std::env::var("TLSBENCH_PKI").unwrap();
        let read = |f: &str| std::fs::read(std::path::Path::new(&pki_dir).join(f)).unwrap();
        let pki = Pki {
            root: CertificateDer::from(read("root.der")),
            chain: vec![
                CertificateDer::from(read("leaf.der")),
                CertificateDer::from(read("inter.der")),
            ],
            leaf_key: PrivateKeyDer::Pkcs8(read("leaf.key").into()),
        };
        return cold_handshake(&mode, &pki);
    }
    let pki = pki();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("root.der"), &pki.root).unwrap();
    std::fs::write(dir.join("leaf.der"), &pki.chain[0]).unwrap();
    std::fs::write(dir.join("inter.der"), &pki.chain[1]).unwrap();
    std::fs::write(dir.join("leaf.key"), pki.leaf_key.secret_der()).unwrap();

    let mut roots = RootCertStore::empty();
    roots.add(pki.root.clone()).unwrap();
    let awslc = aws_lc_rs::default_provider();
    let ringp = ring::default_provider();
    println!(
        "client kx groups offered: aws-lc-rs {:?}; ring {:?}",
        awslc.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>(),
        ringp.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>()
    );
    println!(
        "chain sent by the server: {} certificates, {} bytes",
        pki.chain.len(),
        pki.chain.iter().map(|c| c.len()).sum::<usize>()
    );
    let cc_awslc = client_config(aws_lc_rs::default_provider(), roots.clone());
    let cc_ring = client_config(ring::default_provider(), roots.clone());
    // Server that accepts the hybrid post-quantum group (as s2n-tls / AWS endpoints that support ML-KEM do).
    let sc_pq = server_config(aws_lc_rs::default_provider(), &pki);
    // Server limited to classical groups.
    let sc_classic = server_config(
        CryptoProvider {
            kx_groups: vec![aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1],
            ..aws_lc_rs::default_provider()
        },
        &pki,
    );

    println!("\n{n} full TLS 1.3 handshakes per case, no resumption; thread CPU µs per handshake");
    println!("| client provider / server groups | negotiated group | suite | client median | client p10 | client p90 | server median |");
    println!("|---|---|---|---|---|---|---|");
    run_case(
        "aws-lc-rs / server with X25519MLKEM768",
        &cc_awslc,
        &sc_pq,
        n,
    );
    run_case(
        "aws-lc-rs / server classical only",
        &cc_awslc,
        &sc_classic,
        n,
    );
    run_case("ring / server with X25519MLKEM768", &cc_ring, &sc_pq, n);
    run_case("ring / server classical only", &cc_ring, &sc_classic, n);

    let exe = std::env::current_exe().unwrap();
    let reps = 15;
    println!("\nCold start, {reps} fresh processes per mode (median): SDK connector build = aws-smithy-http-client Connector::builder().tls_provider(..).build()");
    println!("| mode | 1st connector wall µs | 1st connector CPU µs | 2nd connector wall µs | 2nd connector CPU µs | root store reload wall µs | CPU µs | roots | ClientConfig CPU µs | 1st handshake client CPU µs | 2nd handshake client CPU µs |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for mode in ["awslc", "ring"] {
        let mut rows: Vec<Vec<u64>> = Vec::new();
        let mut hs: Vec<Vec<u64>> = Vec::new();
        for _ in 0..reps {
            let out = Command::new(&exe)
                .env("TLSBENCH_COLD", mode)
                .output()
                .unwrap();
            let s = String::from_utf8(out.stdout).unwrap();
            rows.push(
                s.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().unwrap())
                    .collect(),
            );
            let out = Command::new(&exe)
                .env("TLSBENCH_COLD_HS", mode)
                .env("TLSBENCH_PKI", &dir)
                .output()
                .unwrap();
            let s = String::from_utf8(out.stdout).unwrap();
            hs.push(
                s.split_whitespace()
                    .skip(1)
                    .map(|v| v.parse().unwrap())
                    .collect(),
            );
        }
        let med = |rows: &Vec<Vec<u64>>, i: usize| {
            let mut v: Vec<u64> = rows.iter().map(|r| r[i]).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        println!(
            "| {mode} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            med(&rows, 0),
            med(&rows, 1),
            med(&rows, 2),
            med(&rows, 3),
            med(&rows, 4),
            med(&rows, 5),
            med(&rows, 6),
            med(&hs, 0),
            med(&hs, 1),
            med(&hs, 2)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
