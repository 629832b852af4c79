package newsmon.testnode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Test infrastructure for newsmon: one OpenSearch node in this JVM, bound to 127.0.0.1.
 *
 * Usage: TestNode HOME_DIR HTTP_PORT TRANSPORT_PORT
 * Data lives under HOME_DIR/data, so a second start on the same HOME_DIR keeps the indices.
 * Prints one line "newsmon-testnode started" on stdout once the node accepts requests and
 * closes the node cleanly on SIGTERM/SIGINT, or when its standard input reaches end of file
 * (the test process that started it has gone, so no node outlives its test run).
 */
public final class TestNode {

    /** Node's classpath-plugin constructor is protected; this subclass only exposes it. */
    static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Settings settings, Collection<Class<? extends Plugin>> plugins) {
            super(InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "newsmon-test"),
                  plugins, true);
        }
    }

    private TestNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: TestNode HOME_DIR HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "newsmon-test")
            .put("node.name", "newsmon-test")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("node.processors", 2)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("logger.level", "WARN")
            .build();
        LogConfigurator.configureWithoutConfig(settings);

        List<Class<? extends Plugin>> plugins = List.of(
            Netty4Plugin.class, PainlessPlugin.class, CommonAnalysisPlugin.class,
            MapperExtrasPlugin.class, ReindexPlugin.class);
        Node node = new ClasspathPluginNode(settings, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("newsmon-testnode: close failed: " + e);
            } finally {
                stopped.countDown();
            }
        }, "newsmon-testnode-close"));
        Thread watchParent = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // ignore input; only end of file matters
                }
            } catch (java.io.IOException e) {
                // treat a broken stdin like end of file
            }
            System.exit(0);
        }, "newsmon-testnode-stdin");
        watchParent.setDaemon(true);
        watchParent.start();
        node.start();
        System.out.println("newsmon-testnode started");
        System.out.flush();
        stopped.await();
    }
}
