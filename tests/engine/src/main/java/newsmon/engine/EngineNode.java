package newsmon.engine;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.client.node.NodeClient;
import org.opensearch.common.io.stream.BytesStreamOutput;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.util.concurrent.ThreadContext;
import org.opensearch.core.xcontent.MediaType;
import org.opensearch.core.xcontent.XContentBuilder;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.ActionPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.rest.RestChannel;
import org.opensearch.rest.RestHandler;
import org.opensearch.rest.RestRequest;
import org.opensearch.rest.RestResponse;
import org.opensearch.transport.Netty4Plugin;

/**
 * One OpenSearch node on 127.0.0.1 for newsmon's store tests (driven by tests/engine/node.py).
 *
 * <p>Usage: {@code EngineNode [--es-product-header] [-Ekey=value ...] DIR} (or DIR from
 * NEWSMON_ENGINE_DIR). Data, logs and home go under DIR. Prints {@code NEWSMON_ENGINE_PORT=<port>}
 * on stdout once the HTTP layer listens and the cluster is at least yellow. Stops, closing the
 * node, when its stdin closes (at any point, start-up included) or on SIGTERM.
 */
public final class EngineNode {
    public static final String PORT_LINE = "NEWSMON_ENGINE_PORT=";

    private EngineNode() {}

    public static void main(String[] args) throws Exception {
        List<String> extra = new ArrayList<>();
        boolean productHeader = false;
        String dir = System.getenv("NEWSMON_ENGINE_DIR");
        for (String arg : args) {
            if (arg.equals("--es-product-header")) {
                productHeader = true;
            } else if (arg.startsWith("-E") && arg.contains("=")) {
                extra.add(arg.substring(2));
            } else if (!arg.startsWith("-")) {
                dir = arg;
            } else {
                fail("unknown argument " + arg);
            }
        }
        if (dir == null || dir.isBlank()) {
            fail("usage: EngineNode [--es-product-header] [-Ekey=value ...] DIR (or NEWSMON_ENGINE_DIR)");
        }
        Path base = Path.of(dir).toAbsolutePath();
        Path home = base.resolve("home");
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("plugins"));
        // Our log config (WARN and up, on stderr), not the test framework's log4j2-test.properties.
        if (System.getProperty("log4j2.configurationFile") == null) {
            System.setProperty("log4j2.configurationFile",
                    EngineNode.class.getResource("/newsmon-engine-log4j2.properties").toString());
        }

        Settings.Builder settings = Settings.builder()
                .put("cluster.name", "newsmon-test-" + ProcessHandle.current().pid())
                .put("node.name", "newsmon-test")
                .put("path.home", home.toString())
                .put("path.data", base.resolve("data").toString())
                .put("path.logs", base.resolve("logs").toString())
                .put("network.host", "127.0.0.1")
                .put("http.port", "0")
                .put("transport.port", "0")
                .put("http.type", "netty4")
                .put("transport.type", "netty4")
                .put("discovery.type", "single-node")
                // A test box's disk may be fuller than the watermarks; tests are not about that.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                // Elasticsearch 8+ defaults that OpenSearch 2.x does not share.
                .put("action.destructive_requires_name", true);
        for (String pair : extra) {
            int eq = pair.indexOf('=');
            settings.put(pair.substring(0, eq), pair.substring(eq + 1));
        }

        List<Class<? extends Plugin>> plugins = new ArrayList<>(
                List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, PainlessPlugin.class));
        if (productHeader) {
            plugins.add(ProductHeaderPlugin.class);
        }
        // Stdin's end stops the node at any point, during start-up too; so does SIGTERM.
        AtomicReference<Node> running = new AtomicReference<>();
        Thread watcher = new Thread(() -> {
            waitForEof(System.in);
            close(running.get());
            System.exit(0);
        }, "newsmon-engine-stdin");
        watcher.setDaemon(true);
        watcher.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> close(running.get()), "newsmon-engine-close"));
        Node node = new EmbeddedNode(settings.build(), plugins);
        running.set(node);
        node.start();
        node.client().admin().cluster().prepareHealth().setWaitForYellowStatus()
                .setTimeout("60s").get("90s");
        int port = node.injector().getInstance(HttpServerTransport.class)
                .boundAddress().publishAddress().getPort();
        System.out.println(PORT_LINE + port);
        System.out.flush();
        watcher.join();
    }

    private static void waitForEof(InputStream in) {
        byte[] buffer = new byte[256];
        try {
            while (in.read(buffer) != -1) {
                // input is ignored: only its end matters
            }
        } catch (IOException e) {
            // a broken stdin means the parent is gone: stop as for EOF
        }
    }

    private static synchronized void close(Node node) {
        try {
            if (node != null && !node.isClosed()) {
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    System.err.println("newsmon engine: node did not close within 30 s");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void fail(String message) {
        System.err.println("newsmon engine: " + message);
        System.exit(2);
    }

    /** A node with plugins from the classpath instead of a plugins/ folder, as the test framework's MockNode. */
    private static final class EmbeddedNode extends Node {
        EmbeddedNode(Settings settings, Collection<Class<? extends Plugin>> plugins) {
            super(InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "newsmon-test"),
                    plugins, true);
        }
    }

    /**
     * Adds {@code X-Elastic-Product: Elasticsearch} to every REST answer, so the Elasticsearch
     * Python client (which refuses a server without it) can talk to this OpenSearch node. Tests only.
     */
    public static final class ProductHeaderPlugin extends Plugin implements ActionPlugin {
        @Override
        public UnaryOperator<RestHandler> getRestHandlerWrapper(ThreadContext threadContext) {
            return handler -> new RestHandler.Wrapper(handler) {
                @Override
                public void handleRequest(RestRequest request, RestChannel channel, NodeClient client)
                        throws Exception {
                    super.handleRequest(request, new ProductChannel(channel), client);
                }
            };
        }
    }

    private static final class ProductChannel implements RestChannel {
        private final RestChannel inner;

        ProductChannel(RestChannel inner) {
            this.inner = inner;
        }

        @Override
        public XContentBuilder newBuilder() throws IOException {
            return inner.newBuilder();
        }

        @Override
        public XContentBuilder newErrorBuilder() throws IOException {
            return inner.newErrorBuilder();
        }

        @Override
        public XContentBuilder newBuilder(MediaType mediaType, boolean useFiltering) throws IOException {
            return inner.newBuilder(mediaType, useFiltering);
        }

        @Override
        public XContentBuilder newBuilder(MediaType requestContentType, MediaType responseContentType,
                boolean useFiltering) throws IOException {
            return inner.newBuilder(requestContentType, responseContentType, useFiltering);
        }

        @Override
        public BytesStreamOutput bytesOutput() {
            return inner.bytesOutput();
        }

        @Override
        public RestRequest request() {
            return inner.request();
        }

        @Override
        public boolean detailedErrorsEnabled() {
            return inner.detailedErrorsEnabled();
        }

        @Override
        public void sendResponse(RestResponse response) {
            response.addHeader("X-Elastic-Product", "Elasticsearch");
            inner.sendResponse(response);
        }
    }
}
