using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraXs;

/// <summary>
/// LoRA-XS on a Linear or GPT-2 Conv1D layer: B = U_r and A = Σ_r V_rᵀ from the exact truncated SVD of the base weight
/// <c>W = U Σ Vᵀ</c> (in its <c>[out, in]</c> layout), R = 0 (or N(0, 1e-5²) with <c>init_weights: false</c>). Saved
/// tensors: <c>lora_xs_A.weight [r, d_in]</c>, <c>lora_xs_R.weight [r, r]</c>, <c>lora_xs_B.weight [d_out, r]</c>.
/// </summary>
public sealed class LoraXsLayer(BaseLayer baseLayer) : LatentLoraLayer(nameof(LoraXsLayer), baseLayer, "lora_xs")
{
    public override string PeftType => LoraXsConfig.Type;

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraXsConfig)config;
        WeightFactors.CheckRank("LoRA-XS", "r", c.Rank, Base);
        AddFactors(adapterName, c.Rank, c.Scaling, c.Dropout);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var (u, s, vh) = WeightFactors.TruncatedSvd(WeightFactors.OutInCopy(Base), c.Rank);
        // The official repository's std (utils/initialization_utils.py); 0 keeps the output exactly the base's.
        var r = c.InitWeights
            ? torch.zeros(c.Rank, c.Rank, dtype: u.dtype, device: u.device)
            : torch.randn(c.Rank, c.Rank, dtype: u.dtype, device: u.device) * 1e-5;
        SetFactors(adapterName, u, r, s.unsqueeze(1) * vh);
    }
}
