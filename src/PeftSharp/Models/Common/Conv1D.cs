using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// transformers' GPT-2 <c>Conv1D</c>: a linear layer whose weight is stored transposed, <c>[in, out]</c>, and
/// <c>y = x · W + b</c>. The layout is kept as Hugging Face stores it (PEFT's <c>fan_in_fan_out</c>), so checkpoints and
/// adapters load name for name; LoRA reads <see cref="InFeatures"/>/<see cref="OutFeatures"/> and transposes its delta.
/// </summary>
public sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    /// <summary>Weight <c>[in, out]</c> (transposed relative to <c>nn.Linear</c>).</summary>
    public Parameter weight;

    /// <summary>Bias <c>[out]</c>.</summary>
    public Parameter bias;

    public Conv1D(long inFeatures, long outFeatures, Device? device = null, ScalarType? dtype = null) : base(nameof(Conv1D))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(torch.empty(inFeatures, outFeatures, dtype: dtype, device: device));
        bias = new Parameter(torch.zeros(outFeatures, dtype: dtype, device: device));
        RegisterComponents();
    }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        long[] outShape = [.. x.shape[..^1], OutFeatures];
        return torch.addmm(bias, x.reshape(-1, InFeatures), weight, 1, 1).view(outShape).MoveToOuterDisposeScope();
    }
}
