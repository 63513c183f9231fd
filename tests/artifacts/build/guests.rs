//! The guest components the build script builds: each workspace, and
//! the Rust constant, crate name and `.wasm` stem of each of its components.

/// A guest workspace and the components it builds.
pub(crate) struct Workspace {
    /// Directory of the workspace, relative to the repository root.
    pub(crate) dir: &'static str,
    pub(crate) components: &'static [Component],
}

/// One component: its Rust constant, its crate name, and the `.wasm` stem.
pub(crate) struct Component {
    pub(crate) constant: &'static str,
    pub(crate) name: &'static str,
    pub(crate) file: &'static str,
}

pub(crate) const WORKSPACES: &[Workspace] = &[
    Workspace {
        dir: "cloudware-examples",
        components: &[
            Component {
                constant: "HELLO",
                name: "hello",
                file: "hello",
            },
            Component {
                constant: "KV_COUNTER",
                name: "kv-counter",
                file: "kv_counter",
            },
            Component {
                constant: "CONFIG_GREETING",
                name: "config-greeting",
                file: "config_greeting",
            },
            Component {
                constant: "OUTBOUND_FETCH",
                name: "outbound-fetch",
                file: "outbound_fetch",
            },
            Component {
                constant: "ORDERS_SERVICE",
                name: "orders-service",
                file: "orders_service",
            },
            Component {
                constant: "ORDERS_CLIENT",
                name: "orders-client",
                file: "orders_client",
            },
            Component {
                constant: "QUEUE_PRODUCER",
                name: "queue-producer",
                file: "queue_producer",
            },
            Component {
                constant: "QUEUE_WORKER",
                name: "queue-worker",
                file: "queue_worker",
            },
            Component {
                constant: "PUBSUB_PUBLISHER",
                name: "pubsub-publisher",
                file: "pubsub_publisher",
            },
            Component {
                constant: "PUBSUB_SUBSCRIBER",
                name: "pubsub-subscriber",
                file: "pubsub_subscriber",
            },
        ],
    },
    Workspace {
        dir: "tests/programs",
        components: &[
            Component {
                constant: "WASIP2_HELLO",
                name: "wasip2-hello",
                file: "wasip2_hello",
            },
            Component {
                constant: "HOSTILE",
                name: "hostile",
                file: "hostile",
            },
            Component {
                constant: "WSTD_HELLO",
                name: "wstd-hello",
                file: "wstd_hello",
            },
            Component {
                constant: "KV_GUEST",
                name: "kv-guest",
                file: "kv_guest",
            },
            Component {
                constant: "SVC_ECHO",
                name: "svc-echo",
                file: "svc_echo",
            },
            Component {
                constant: "SVC_CALLER",
                name: "svc-caller",
                file: "svc_caller",
            },
            Component {
                constant: "SVC_WRONG",
                name: "svc-wrong",
                file: "svc_wrong",
            },
        ],
    },
];

/// Workspaces whose crates build `wasm32-wasip1` core modules that are
/// componentized with the preview1 reactor adapter, as cargo-component does.
pub(crate) const ADAPTED: &[Workspace] = &[Workspace {
    dir: "tests/programs/adapter-hello",
    components: &[Component {
        constant: "ADAPTER_HELLO",
        name: "adapter-hello",
        file: "adapter_hello",
    }],
}];
