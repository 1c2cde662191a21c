using System.Diagnostics;
using PeftSharp.Core;
using PeftSharp.Models;
using PeftSharp.Training.Optim;
using TorchSharp;

namespace PeftSharp.Bench.Commands;

/// <summary>The three training configurations compared.</summary>
internal static class TrainMode
{
    /// <summary>Full fine-tuning: every parameter trainable, AdamW over all of them.</summary>
    public const string Full = "full";

    /// <summary>LoRA r=8 on all linear layers, AdamW over the adapter parameters.</summary>
    public const string Lora = "lora";

    /// <summary>
    /// The floor a LoRA step can approach: every parameter frozen, the token-embedding output made to require grad, one
    /// forward + loss + backward (activation gradients through every layer, no weight gradient, no optimizer).
    /// </summary>
    public const string Floor = "floor";

    /// <summary>LoRA as above with <c>PretrainedModel.GradientCheckpointing</c>: layer activations recomputed in the backward.</summary>
    public const string LoraCheckpointed = "lora-ckpt";

    public static readonly string[] All = [Full, Lora, Floor, LoraCheckpointed];
}

/// <summary>What one child process measured for one (model, mode): medians in ms, memory in bytes.</summary>
internal sealed record TrainStepResult(
    string Model,
    string Mode,
    long TotalParameters,
    long MatmulParameters,
    long TrainableParameters,
    long AttentionWidth,
    double StepMs,
    double ForwardMs,
    double BackwardMs,
    double OptimizerMs,
    double CpuMs,
    List<double> StepTimesMs,
    long BaselineRssBytes,
    long PeakBytes,
    double FirstLoss);

/// <summary>
/// One (model, mode) measured in the calling process: build, set up the mode, then warm-up + timed steps, each step
/// in its own dispose scope: forward + loss, backward, optimizer step + zero_grad. Peak RSS is the process's VmHWM at
/// the end, so this runs in a child process of its own.
/// </summary>
internal static class TrainStep
{
    private const double LearningRate = 1e-4;

    public static TrainStepResult Measure(BenchSettings settings, BenchModel spec, string mode)
    {
        var baseline = ProcStatus.BaselineAfterTorchInit();
        torch.manual_seed(0);
        var model = spec.Build();
        var total = BenchModels.TotalParameters(model);
        var matmul = BenchModels.MatmulParameters(model);
        PeftModel? peft = null;
        TrainingOptimizer? optimizer = null;
        IDisposable? hook = null;
        switch (mode)
        {
            case TrainMode.Full:
                foreach (var p in model.parameters())
                {
                    p.requires_grad = true;
                }
                optimizer = AdamWOptimizer.Create(model.named_parameters().Select(p => new NamedParameter(p.name, p.parameter)));
                break;
            case TrainMode.Lora:
            case TrainMode.LoraCheckpointed:
                peft = PeftModel.Create(model, BenchModels.Lora());
                model.GradientCheckpointing = mode == TrainMode.LoraCheckpointed;
                optimizer = AdamWOptimizer.Create(peft.NamedParameters().Where(p => p.Parameter.requires_grad).Select(p => new NamedParameter(p.Name, p.Parameter)));
                break;
            case TrainMode.Floor:
                foreach (var p in model.parameters())
                {
                    p.requires_grad = false;
                }
                hook = BenchModels.GradientFromEmbeddings(model);
                break;
            default:
                throw new BenchException($"--mode must be one of {string.Join(", ", TrainMode.All)}, got '{mode}'");
        }
        model.train();
        var trainable = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        using var ids = BenchModels.RandomIds(model, settings.Batch, settings.SequenceLength, seed: 1);

        var forward = new List<double>();
        var backward = new List<double>();
        var step = new List<double>();
        var opt = new List<double>();
        var cpu = new List<double>();
        var firstLoss = double.NaN;
        for (var i = 0; i < settings.Warmup + settings.Repeats; i++)
        {
            using var scope = torch.NewDisposeScope();
            var cpuStart = CpuTimeMs();
            var sw = Stopwatch.StartNew();
            var loss = BenchModels.Loss(model, ids);
            var tForward = sw.Elapsed.TotalMilliseconds;
            loss.backward();
            var tBackward = sw.Elapsed.TotalMilliseconds;
            if (optimizer is not null)
            {
                optimizer.Step(LearningRate);
                optimizer.ZeroGrad();
            }
            var tStep = sw.Elapsed.TotalMilliseconds;
            var cpuStep = CpuTimeMs() - cpuStart;
            if (i == 0)
            {
                firstLoss = loss.item<float>();
            }
            if (i >= settings.Warmup)
            {
                forward.Add(tForward);
                backward.Add(tBackward - tForward);
                opt.Add(tStep - tBackward);
                step.Add(tStep);
                cpu.Add(cpuStep);
            }
        }
        var peak = ProcStatus.Read().PeakBytes;
        hook?.Dispose();
        optimizer?.Dispose();
        if (peft is not null)
        {
            peft.Dispose();
        }
        else
        {
            model.Dispose();
        }
        return new TrainStepResult(spec.Key, mode, total, matmul, trainable, BenchModels.AttentionWidth(model), Stats.Median(step), Stats.Median(forward),
            Stats.Median(backward), Stats.Median(opt), Stats.Median(cpu), step, baseline.RssBytes, peak, firstLoss);
    }

    /// <summary>
    /// CPU time of the whole process (all threads). On a busy machine it moves far less than wall time; with one torch
    /// thread it is the work done, which is what a before/after comparison on a shared machine can rely on.
    /// </summary>
    private static double CpuTimeMs()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalMilliseconds;
    }

    /// <summary>
    /// Model FLOPs of one step (attention score/value products left out, as in the 6·N·D rule). N = matmul parameters,
    /// tokens = batch × length. Full: 6·N·tokens (forward 2N, input gradients 2N, weight gradients 2N). Floor:
    /// 4·N·tokens (no weight gradients). LoRA: 4·N·tokens + 6·N_lora·tokens (the floor plus the adapters' own forward,
    /// input- and weight-gradient products).
    /// </summary>
    public static double Flops(TrainStepResult r, long tokens) => r.Mode switch
    {
        TrainMode.Full => 6.0 * r.MatmulParameters * tokens,
        TrainMode.Floor => 4.0 * r.MatmulParameters * tokens,
        _ => 4.0 * r.MatmulParameters * tokens + 6.0 * r.TrainableParameters * tokens,
    };

    /// <summary>
    /// The attention products the 6·N rule leaves out: per token and layer QKᵀ and AV take 2·2·T·width FLOPs forward
    /// (the full T×T square: the mask is additive, nothing is skipped), and their backward twice that in every mode (the
    /// gradient reaches Q, K and V whatever is frozen). Recomputation under checkpointing is not counted, as in MFU.
    /// </summary>
    public static double AttentionFlops(TrainStepResult r, long tokens, int length) => 12.0 * r.AttentionWidth * length * tokens;
}
