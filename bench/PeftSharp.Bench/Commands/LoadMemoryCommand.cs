using System.Diagnostics;
using PeftSharp.Data;
using PeftSharp.Models;

namespace PeftSharp.Bench.Commands;

/// <summary>What a child measured while loading one folder with <see cref="AutoModel.FromPretrained"/>.</summary>
internal sealed record LoadResult(long ParameterBytes, long BaselineRssBytes, long PeakBytes, long RssAfterBytes, double Seconds);

/// <summary>
/// <c>load-memory</c>: peak RSS of a child process that loads (1) the bundled MiniLM and (2) a generated ~500M-parameter
/// Llama (F32, sharded, in a temp folder deleted afterwards), against the checkpoint's size. The target is a peak of
/// about one copy of the weights above the baseline (libtorch loaded, no model).
/// </summary>
internal static class LoadMemoryCommand
{
    public static object RunChild(BenchArgs args)
    {
        var folder = args.Require("folder");
        var baseline = ProcStatus.BaselineAfterTorchInit();
        var sw = Stopwatch.StartNew();
        using var model = AutoModel.FromPretrained(folder);
        var seconds = sw.Elapsed.TotalSeconds;
        var after = ProcStatus.Read();
        var bytes = model.parameters().Sum(p => p.numel() * p.element_size());
        return new LoadResult(bytes, baseline.RssBytes, after.PeakBytes, after.RssBytes, seconds);
    }

    public static void Run(BenchContext context)
    {
        var rows = new List<string[]>();
        // stories260K's 1 MB of weights shows the fixed cost of a load (code JIT-compiled, managed objects).
        var stories = BundledAssets.Model(BundledAssets.Stories260K);
        rows.Add(Measure(context, "stories260K (fixed cost of a load)", stories, FolderBytes(stories), target: false));
        var minilm = BundledAssets.Model(BundledAssets.MiniLmL6V2);
        rows.Add(Measure(context, "all-MiniLM-L6-v2 (F16 file, F32 model)", minilm, FolderBytes(minilm)));

        var config = SyntheticLlama.ForLoadSize(context.Settings.LoadSize);
        var temp = Path.Combine(Path.GetTempPath(), $"peftsharp-bench-{config.Source}-{Environment.ProcessId}");
        try
        {
            Console.Error.WriteLine($"[bench]   writing {config.Source} to {temp}");
            var sw = Stopwatch.StartNew();
            var written = SyntheticCheckpoint.Write(config, temp);
            Console.Error.WriteLine($"[bench]   wrote {written / Stats.MiB:F0} MiB in {sw.Elapsed.TotalSeconds:F0} s");
            rows.Add(Measure(context, $"{config.Source} (F32, sharded per layer)", temp, FolderBytes(temp)));
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
        context.Report.AddSection("Model load peak memory",
            "Each load in a child process; baseline = VmRSS with libtorch loaded before the load; peak = VmHWM after it. "
            + "\"Peak above base / weights\" is the target quantity (≈ 1: one copy of the weights; goal taken as ≤ 1.10×). "
            + "stories260K (1 MB of weights) shows the fixed cost of any load (code compiled, managed objects), which dominates the small MiniLM's ratio. "
            + "Tensor-bound: a second load with glibc's mmap threshold fixed at 64 KiB, so freed buffers (dtype conversion) are not kept by the allocator.\n\n"
            + Markdown.Table(["Checkpoint", "File MiB", "F32 weights MiB", "Baseline MiB", "Peak MiB", "Peak above base MiB", "Peak above base / weights", "Peak above base / file", "Tensor-bound above base MiB", "Load s"], rows));
    }

    private static string[] Measure(BenchContext context, string label, string folder, long fileBytes, bool target = true)
    {
        Console.Error.WriteLine($"[bench]   load-memory {label}");
        var r = ChildProcess.Run<LoadResult>("load-memory", ["--folder", folder, .. context.Settings.ToArgv()]);
        var bound = ChildProcess.Run<LoadResult>("load-memory", ["--folder", folder, .. context.Settings.ToArgv()], TrainStepCommand.FixedMmapThreshold);
        var above = r.PeakBytes - r.BaselineRssBytes;
        var ratio = (double)above / r.ParameterBytes;
        if (target)
        {
            context.Report.AddTarget(TargetRow.AtMost("load peak above base / F32 weights", label, ratio, 1.10));
        }
        return [label, Fmt.MiB(fileBytes), Fmt.MiB(r.ParameterBytes), Fmt.MiB(r.BaselineRssBytes), Fmt.MiB(r.PeakBytes), Fmt.MiB(above),
            Fmt.Ratio(ratio), Fmt.Ratio((double)above / fileBytes), Fmt.MiB(bound.PeakBytes - bound.BaselineRssBytes), Fmt.F(r.Seconds, 2)];
    }

    /// <summary>Bytes of the weights files: <c>model.safetensors</c>, or the shards <c>model-*.safetensors</c> (not e.g. reference logits).</summary>
    private static long FolderBytes(string folder)
    {
        var single = Path.Combine(folder, "model.safetensors");
        return File.Exists(single)
            ? new FileInfo(single).Length
            : Directory.EnumerateFiles(folder, "model-*.safetensors").Sum(f => new FileInfo(f).Length);
    }
}
