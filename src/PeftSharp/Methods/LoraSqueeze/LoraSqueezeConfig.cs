using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.LoraSqueeze;

/// <summary>
/// In-tuning LoRA-Squeeze (Vulić et al., arXiv 2602.10993): LoRA trained at rank <c>r</c> and annealed to
/// <c>target_r</c> during training: after each step listed in <c>squeeze_steps</c>, every module is re-factored to the next
/// rank of a geometric schedule r → … → target_r by the truncated SVD of its ΔW (computed from the factors). The scale
/// s = lora_alpha / r (√r with rsLoRA) stays constant, so the function changes only by the truncated tail. Not a PEFT
/// type: <c>LORA_SQUEEZE</c> exists only in memory; the adapter is saved as a plain PEFT LoRA at its current rank
/// (r = target_r once the schedule has run, lora_alpha = s·r). <c>r</c> and <c>lora_alpha</c>
/// (<see cref="RsLoraKeysConfig"/>) are the source rank and its α; <see cref="LoraKeysConfig.Scaling"/> is the constant
/// scale kept at every rank.
/// </summary>
public sealed record LoraSqueezeConfig : RsLoraKeysConfig
{
    /// <summary>The in-memory type (PeftSharp only; files say <c>LORA</c>).</summary>
    public const string Type = "LORA_SQUEEZE";

    [JsonIgnore]
    public override string PeftType => Type;

    [JsonPropertyName("fan_in_fan_out")]
    public bool FanInFanOut { get; init; }

    /// <summary>Only <c>none</c> (biases stay frozen).</summary>
    [JsonPropertyName("bias")]
    public string Bias { get; init; } = "none";

    /// <summary>Rank after the last squeeze (default 4; at most r).</summary>
    [JsonPropertyName("target_r")]
    public int TargetRank { get; init; } = 4;

    /// <summary>
    /// Optimizer steps (1-based counts of completed steps, increasing) after which the rank drops to the next stage
    /// (default [100, 200]). K steps give ranks round(r·(target_r/r)^(i/K)), i = 1…K, the last exactly target_r
    /// (r 32 → 4 over 3 steps: 16, 8, 4).
    /// </summary>
    [JsonPropertyName("squeeze_steps")]
    public IReadOnlyList<long> SqueezeSteps { get; init; } = [100, 200];

    /// <summary>The rank after stage <paramref name="stage"/> (0 = the source rank r, K = target_r).</summary>
    public int RankAfterStage(int stage)
    {
        var k = SqueezeSteps.Count;
        if (stage <= 0 || k == 0)
        {
            return Rank;
        }
        if (stage >= k)
        {
            return TargetRank;
        }
        var r = (int)Math.Round(Rank * Math.Pow((double)TargetRank / Rank, (double)stage / k), MidpointRounding.AwayFromZero);
        return Math.Clamp(r, TargetRank, Rank);
    }

    /// <summary>α that gives the constant scale at rank <paramref name="rank"/>: s·r (s·√r with rsLoRA).</summary>
    public double AlphaAt(int rank) => rank == Rank ? Alpha : UseRsLora ? Scaling * Math.Sqrt(rank) : Scaling * rank;

    /// <summary>The plain LoRA config of this adapter at <paramref name="rank"/> (what is saved).</summary>
    public LoraConfig AsLora(int rank, IReadOnlyDictionary<string, int>? rankPattern = null) => LoraConfig.WithSharedKeysOf(this) with
    {
        Rank = rank,
        Alpha = AlphaAt(rank),
        Dropout = Dropout,
        UseRsLora = UseRsLora,
        FanInFanOut = FanInFanOut,
        Bias = Bias,
        RankPattern = rankPattern ?? new Dictionary<string, int>(),
        AlphaPattern = rankPattern?.ToDictionary(kv => kv.Key, kv => AlphaAt(kv.Value)) ?? new Dictionary<string, double>(),
    };

    public override void Validate()
    {
        base.Validate();
        if (Bias != "none")
        {
            throw new ConfigException($"bias must be \"none\" for lora_squeeze, got \"{Bias}\"");
        }
        if (TargetRank < 1 || TargetRank > Rank)
        {
            throw new ConfigException($"target_r must be in [1, r = {Rank}], got {TargetRank}");
        }
        for (var i = 0; i < SqueezeSteps.Count; i++)
        {
            if (SqueezeSteps[i] < 1 || (i > 0 && SqueezeSteps[i] <= SqueezeSteps[i - 1]))
            {
                throw new ConfigException($"squeeze_steps must be positive and strictly increasing, got [{string.Join(", ", SqueezeSteps)}]");
            }
        }
        if (TargetRank < Rank && SqueezeSteps.Count == 0)
        {
            throw new ConfigException($"squeeze_steps is empty, so the rank would never go from r = {Rank} to target_r = {TargetRank}");
        }
    }
}
