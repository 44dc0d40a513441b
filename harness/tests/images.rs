//! Image builds need only a Docker daemon and a Debian mirror: the agent
//! image (the smallest recipe) is built by crashlab reading the archive
//! itself, under a test tag so the images other tests use stay as they
//! are, and a command runs in it.

mod common;

use bollard::models::ContainerCreateBody;
use crashlab::images::{self, BuildOptions, DEFAULT_MIRROR, Via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_image_builds_from_the_archive_and_runs_a_command() {
    if common::skip_docker() {
        return;
    }
    let _exclusive = common::exclusive().await;
    let docker = crashlab::app::connect().await.expect("a Docker daemon");
    let recipe = &crashlab_workloads::agent::RECIPE;
    let id = std::process::id();
    let image = format!("crashlab-test/agent-build:{id}");
    let work = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        mirror: std::env::var("CRASHLAB_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned()),
        // The package cache the CLI uses, so a rerun downloads nothing.
        cache_dir: crashlab::run::state_dir().join("packages"),
        work_dir: work.path().to_owned(),
        quiet: true,
        via: Via::Archive,
    };
    images::build_as(&docker, recipe, &image, &options).await.unwrap();

    let inspect = docker.image(&image).await.unwrap().expect("the image was imported");
    let config = inspect.config.unwrap();
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&format!("CRASHLAB_RECIPE={}", recipe.fingerprint())), "{env:?}");
    assert_eq!(config.entrypoint.unwrap_or_default(), ["/usr/local/bin/crashlab-agent"]);
    assert_eq!(inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()), Some(1), "one flattened layer");

    let name = format!("crashlab-test-agent-build-{id}");
    let container = docker
        .create_container(
            &name,
            ContainerCreateBody {
                image: Some(image.clone()),
                entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
                cmd: Some(vec![
                    "sqlite3 :memory: 'select 40 + 2' && dpkg --audit && test -L /bin && ! test -e /crashlab-bootstrap"
                        .into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker.start(&container).await.unwrap();
    let code = docker.wait(&container).await.unwrap();
    let output = docker.logs_all(&container).await.unwrap();
    docker.remove_container(&container).await.unwrap();
    docker.remove_image(&image).await.unwrap();
    assert_eq!((code, output.trim()), (0, "42"));
    // The build removed its base image and its install container.
    assert!(docker.image(&format!("crashlab-build/agent:{id}")).await.unwrap().is_none());
}
