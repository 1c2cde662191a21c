using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Bench;

/// <summary>
/// Peak resident memory of a LoRA training step (forward + backward) on a random Llama with and without
/// <see cref="PretrainedModel.GradientCheckpointing"/>. Each setting runs in its own child process so that VmHWM
/// (the kernel's peak-RSS counter in /proc/self/status) belongs to that run alone. Linux only.
/// </summary>
internal static class GradientCheckpointingBench
{
    public const string Command = "gradient-checkpointing";

    private const int Batch = 4;
    private const int SeqLen = 512;
    private const int Steps = 2;
    private const int Seed = 0;

    // A ~50M-parameter Llama: big enough that activations dominate the weights at 4 x 512 tokens, small enough for a CPU.
    private const string ConfigJson = """
        {
          "architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "vocab_size": 8192, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 8,
          "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 1024,
          "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false
        }
        """;

    public static int Run(string[] args)
    {
        if (args is ["--child", var mode])
        {
            return Child(mode == "on");
        }
        var rows = new[] { false, true }.Select(RunChild).ToList();
        var off = rows[0];
        var on = rows[1];
        Console.WriteLine($"model: random Llama (hidden 768, intermediate 2048, 8 layers, 12/4 heads, vocab 8192, {off.Parameters / 1e6:F1}M params, float32), "
            + $"LoRA r=8 on q_proj/v_proj, batch {Batch} x seq {SeqLen}, {Steps} steps, seed {Seed}, {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| checkpointing | RSS after build (MiB) | peak RSS (MiB) | peak - build (MiB) | step time (s) | loss |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {(r.Checkpointing ? "on" : "off")} | {r.BuildMiB:F0} | {r.PeakMiB:F0} | {r.PeakMiB - r.BuildMiB:F0} | {r.StepSeconds:F2} | {r.Loss:F6} |"));
        }
        var saved = (off.PeakMiB - off.BuildMiB) - (on.PeakMiB - on.BuildMiB);
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"checkpointing saves {saved:F0} MiB of step memory ({100 * saved / (off.PeakMiB - off.BuildMiB):F0}%), peak RSS x{on.PeakMiB / off.PeakMiB:F2}, step time x{on.StepSeconds / off.StepSeconds:F2}"));
        return 0;
    }

    private sealed record Result(bool Checkpointing, long Parameters, double BuildMiB, double PeakMiB, double StepSeconds, double Loss);

    private static Result RunChild(bool checkpointing)
    {
        // Under `dotnet PeftSharp.Bench.dll` the process is the dotnet host, which needs the assembly path first.
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(host) { RedirectStandardOutput = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(Assembly.GetExecutingAssembly().Location);
        }
        foreach (var a in new[] { Command, "--child", checkpointing ? "on" : "off" })
        {
            start.ArgumentList.Add(a);
        }
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {host}");
        var output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0)
        {
            throw new InvalidOperationException($"child ({(checkpointing ? "on" : "off")}) exited with {child.ExitCode}: {output}");
        }
        var values = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last().Split(' ')
            .Select(kv => kv.Split('='))
            .ToDictionary(kv => kv[0], kv => double.Parse(kv[1], CultureInfo.InvariantCulture));
        return new Result(checkpointing, (long)values["params"], values["build_mib"], values["peak_mib"], values["step_s"], values["loss"]);
    }

    private static int Child(bool checkpointing)
    {
        torch.manual_seed(Seed);
        var model = AutoModel.FromConfig(ModelConfig.Parse(ConfigJson, "bench config"));
        var parameters = model.parameters().Sum(p => p.numel());
        var peft = PeftModel.Create(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = TargetModules.Of("q_proj", "v_proj") });
        model.train();
        model.GradientCheckpointing = checkpointing;
        var ids = torch.randint(0, 8192, [Batch, SeqLen], dtype: ScalarType.Int64);
        var buildMiB = StatusMiB("VmRSS");
        double seconds = 0;
        double loss = 0;
        for (var step = 0; step < Steps; step++)
        {
            var clock = Stopwatch.StartNew();
            using (var scope = torch.NewDisposeScope())
            {
                var logits = model.Forward(ids).Logits;
                var l = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), ids.reshape(-1));
                l.backward();
                loss = l.item<float>();
                foreach (var p in peft.TrainableParameters())
                {
                    p.grad?.zero_();
                }
            }
            seconds = clock.Elapsed.TotalSeconds;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"params={parameters} build_mib={buildMiB:F1} peak_mib={StatusMiB("VmHWM"):F1} step_s={seconds:F3} loss={loss:R}"));
        return 0;
    }

    /// <summary>A kB field of /proc/self/status (VmRSS, VmHWM) in MiB.</summary>
    private static double StatusMiB(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        var kb = long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return kb / 1024.0;
    }
}
