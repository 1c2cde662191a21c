using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;

namespace PeftSharp.Methods.Mole;

/// <summary>
/// LLaVA-MoLE (Chen et al., arXiv 2401.16160): plain LoRA on every target outside the MLPs, and on every MLP projection
/// (<see cref="ExpertModules"/>) <see cref="NumExperts"/> LoRA experts chosen per token by one router per MLP, a
/// <c>Linear(d, K)</c> with bias on the MLP input. Not a PEFT method; the key names follow PEFT's LoRA keys and the
/// official code (forwchen/LLaVA-MoLE: <c>num_experts</c>, <c>moe_balance_w</c>).
/// </summary>
public sealed record MoleConfig : LoraKeysConfig
{
    /// <summary>The <c>peft_type</c> written to adapter_config.json (PeftSharp's own; PEFT has no MoLE).</summary>
    public const string Type = "MOLE";

    /// <summary>MLP projections of Llama/Qwen/Mistral (gate/up/down), GPT-2 (mlp.c_fc/mlp.c_proj) and BERT (intermediate.dense, layer.N.output.dense).</summary>
    public const string DefaultExpertModules = @".*\.(gate_proj|up_proj|down_proj|mlp\.c_fc|mlp\.c_proj|intermediate\.dense|\d+\.output\.dense)";

    /// <summary>Top-1 routing; the chosen expert's delta is added unscaled (the official sparse path).</summary>
    public const string Sparse = "sparse";

    /// <summary>Top-1 routing with the chosen delta scaled by its router probability (Switch Transformer style).</summary>
    public const string Switch = "switch";

    /// <summary>Every expert runs; the deltas are mixed by the router's softmax (the official <c>dense_moe</c> path).</summary>
    public const string Dense = "dense";

    /// <summary>
    /// A MoLE config with r = 8 for every LoRA (attention and each expert), α = 16 (s = 2, as the released checkpoint's
    /// r 16 / α 32) and dropout 0.05 (the official code's value).
    /// </summary>
    public MoleConfig()
    {
        Alpha = 16;
        Dropout = 0.05;
    }

    [JsonIgnore]
    public override string PeftType => Type;

    /// <summary>Experts K per MLP (default 3, the released checkpoint's).</summary>
    [JsonPropertyName("num_experts")]
    public int NumExperts { get; init; } = 3;

    /// <summary>
    /// Which of the targets are MLP projections carrying experts (same matching rules as <c>target_modules</c>); the others
    /// get plain LoRA. The modules of one MLP are those with the same layer prefix (up to the last <c>.N.</c>); the first of
    /// them in module order sees the MLP input and owns the router. Default: <see cref="DefaultExpertModules"/>.
    /// </summary>
    [JsonPropertyName("expert_modules")]
    public TargetModules ExpertModules { get; init; } = TargetModules.Regex(DefaultExpertModules);

    /// <summary><c>sparse</c> (default, top-1 unscaled), <c>switch</c> (top-1 scaled by p) or <c>dense</c> (soft mixture of all K).</summary>
    [JsonPropertyName("routing")]
    public string Routing { get; init; } = Sparse;

    /// <summary>
    /// Weight of the load-balancing loss Σ_k P_k·f_k (per sample over every MLP's real tokens, averaged over the batch)
    /// added to the training loss; 0 turns it off. The official value is not released; default 0.01.
    /// </summary>
    [JsonPropertyName("moe_balance_w")]
    public double BalanceWeight { get; init; } = 0.01;

    /// <summary>The adapter's routing groups (set by <see cref="MoleMethod.PrepareAdapter"/>; one per model and adapter).</summary>
    [JsonIgnore]
    internal MolePlan? Plan { get; init; }

    /// <summary>The MLP this module belongs to, or null for a plain-LoRA module (set by <see cref="ForModule"/>).</summary>
    [JsonIgnore]
    internal MoleMembership? Membership { get; init; }

    public override AdapterConfig ForModule(string qualifiedName)
    {
        if (Plan is null || !ExpertModules.Matches(qualifiedName))
        {
            return this with { Membership = null };
        }
        return this with { Membership = Plan.Join(GroupKey(qualifiedName), qualifiedName) };
    }

    /// <summary>The MLP a module belongs to: its name up to the last <c>.N.</c> layer index, else its parent's name.</summary>
    internal static string GroupKey(string qualifiedName)
    {
        var m = Regex.Match(qualifiedName, @"^(.*\.\d+)\.");
        if (m.Success)
        {
            return m.Groups[1].Value;
        }
        var dot = qualifiedName.LastIndexOf('.');
        return dot < 0 ? "" : qualifiedName[..dot];
    }

    public override void Validate()
    {
        base.Validate();
        if (NumExperts < 1)
        {
            throw new ConfigException($"num_experts must be >= 1, got {NumExperts}");
        }
        if (Routing is not (Sparse or Switch or Dense))
        {
            throw new ConfigException($"routing must be \"{Sparse}\", \"{Switch}\" or \"{Dense}\", got \"{Routing}\"");
        }
        if (BalanceWeight < 0 || !double.IsFinite(BalanceWeight))
        {
            throw new ConfigException($"moe_balance_w must be a finite number >= 0, got {BalanceWeight}");
        }
        if (ExpertModules is null || ExpertModules.IsAllLinear)
        {
            throw new ConfigException("expert_modules must be a list of module names or a regex (not null or all-linear)");
        }
    }
}
