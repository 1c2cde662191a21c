using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Models.Common;

/// <summary>
/// Root-mean-square LayerNorm as transformers' <c>LlamaRMSNorm</c>: <c>weight · x / sqrt(mean(x²) + eps)</c>, the
/// normalisation computed in float32 and cast back to the input dtype before the weight is applied. Weight <c>[dim]</c>.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Scale <c>[dim]</c>, initialised to ones.</summary>
    public Parameter weight;

    private readonly double _eps;

    public RmsNorm(long dim, double eps, Device? device = null, ScalarType? dtype = null) : base(nameof(RmsNorm))
    {
        _eps = eps;
        weight = new Parameter(torch.ones(dim, dtype: dtype, device: device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.to_type(ScalarType.Float32);
        var variance = h.pow(2).mean([-1], keepdim: true);
        h = h * torch.rsqrt(variance + _eps);
        return (weight * h.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}
