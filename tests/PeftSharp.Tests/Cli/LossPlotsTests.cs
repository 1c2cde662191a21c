using PeftSharp.Cli.Rendering;

namespace PeftSharp.Tests.Cli;

public class LossPlotsTests
{
    [Fact]
    public void Metrics_file_becomes_loss_and_learning_rate_pngs()
    {
        var dir = Directory.CreateTempSubdirectory("peftsharp-plots-").FullName;
        try
        {
            var lines = Enumerable.Range(1, 20).Select(s => $"{{\"step\":{s},\"loss\":{3.0 / s},\"lr\":{1e-3 * s / 20},\"grad_norm\":1.0}}").ToList();
            lines.Add("{\"step\":10,\"eval_loss\":0.5,\"eval_accuracy\":0.8}");
            lines.Add("{\"step\":20,\"eval_loss\":0.3}");
            File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), lines);
            var written = LossPlots.Write(dir);
            Assert.Equal([Path.Combine(dir, "loss.png"), Path.Combine(dir, "lr.png")], written);
            foreach (var f in written)
            {
                var bytes = File.ReadAllBytes(f);
                Assert.True(bytes.Length > 1000);
                Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
