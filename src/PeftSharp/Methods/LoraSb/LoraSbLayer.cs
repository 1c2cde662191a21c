using PeftSharp.Core;
using PeftSharp.Methods.Decompositions;
using PeftSharp.Methods.LoraXs;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraSb;

/// <summary>
/// LoRA-SB on a Linear or GPT-2 Conv1D layer: LoRA-XS's B·R·A structure with scale 1. Created uncalibrated (random
/// orthonormal B and A, R = 0); <see cref="InitialiseFromUpdate"/> sets <c>B = U_r</c>, <c>R = diag(S_r)</c>,
/// <c>A = V_rᵀ</c> from an approximated first update ΔW₁ ≈ U_r diag(S_r) V_rᵀ. Saved tensors: <c>lora_sb_A.weight [r, d_in]</c>,
/// <c>lora_sb_R.weight [r, r]</c>, <c>lora_sb_B.weight [d_out, r]</c> (B and A come from data: they cannot be re-derived).
/// </summary>
public sealed class LoraSbLayer(BaseLayer baseLayer) : LatentLoraLayer(nameof(LoraSbLayer), baseLayer, "lora_sb")
{
    private readonly Dictionary<string, int> _ranks = [];

    public override string PeftType => LoraSbConfig.Type;

    public int RankOf(string adapterName) => _ranks[adapterName];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        var c = (LoraSbConfig)config;
        WeightFactors.CheckRank("LoRA-SB", "r", c.Rank, Base);
        AddFactors(adapterName, c.Rank, 1.0, c.Dropout);
        _ranks[adapterName] = c.Rank;
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        // Placeholder frames until calibration: orthonormal like the calibrated ones, cheap (no SVD of W), and with R = 0
        // an uncalibrated adapter leaves the model unchanged.
        var b = WeightFactors.RandomOrthonormalColumns(Base.OutFeatures, c.Rank, Base.DType, Base.Device);
        var a = WeightFactors.RandomOrthonormalColumns(Base.InFeatures, c.Rank, Base.DType, Base.Device).t();
        var r = c.InitWeights
            ? torch.zeros(c.Rank, c.Rank, dtype: Base.DType, device: Base.Device)
            : torch.randn(c.Rank, c.Rank, dtype: Base.DType, device: Base.Device) / c.Rank;
        SetFactors(adapterName, b, r, a);
    }

    protected override void RemoveAdapter(string adapterName)
    {
        base.RemoveAdapter(adapterName);
        _ranks.Remove(adapterName);
    }

    /// <summary>
    /// Sets B, R, A from the rank-r truncated SVD of <paramref name="updateOutIn"/> (<c>[d_out, d_in]</c>, any floating
    /// dtype; decomposed in fp32/fp64, then cast to the layer's dtype), so that <c>B R A</c> is the best rank-r approximation
    /// of the update (Eckart–Young). The base weight is not touched.
    /// </summary>
    public void InitialiseFromUpdate(string adapterName, Tensor updateOutIn)
    {
        var rank = _ranks[adapterName];
        if (updateOutIn.ndim != 2 || updateOutIn.shape[0] != Base.OutFeatures || updateOutIn.shape[1] != Base.InFeatures)
        {
            throw new PeftException(
                $"LoRA-SB: the update is [{string.Join(", ", updateOutIn.shape)}]; this layer needs [{Base.OutFeatures}, {Base.InFeatures}] ([out, in])");
        }
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var (u, s, vh) = WeightFactors.TruncatedSvd(updateOutIn.detach().to_type(WeightFactors.ComputeType(updateOutIn.dtype)), rank);
        SetFactors(adapterName, u, torch.diag(s), vh);
    }
}
