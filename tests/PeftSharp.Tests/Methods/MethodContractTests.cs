using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.LoHa;
using PeftSharp.Methods.LoKr;
using PeftSharp.Methods.Bone;
using PeftSharp.Methods.Lora;
using PeftSharp.Methods.LoraSb;
using PeftSharp.Methods.LoraXs;
using PeftSharp.Methods.LolDu;
using PeftSharp.Methods.Miss;
using PeftSharp.Methods.RandLora;
using PeftSharp.Methods.Vera;
using PeftSharp.Methods.Hydra;
using PeftSharp.Methods.LoraC;
using PeftSharp.Methods.ConvLora;
using PeftSharp.Methods.CpLora;
using PeftSharp.Methods.TLora;
using PeftSharp.Methods.Salt;
using PeftSharp.Methods.Mole;
using PeftSharp.Methods.GaLore;
using PeftSharp.Methods.LoraSqueeze;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods;

/// <summary>One row per registered method: how to configure it and what its defining properties are.</summary>
public sealed record MethodContract(
    string Name,
    Func<TargetModules, AdapterConfig> Config,
    Func<BaseLayer, long> ExpectedTrainable,
    bool IdentityAtInit = true,
    bool Mergeable = true,
    double InitTolerance = 0)
{
    public override string ToString() => Name;
}

/// <summary>
/// The contract every registered method passes (PEFT's TEST_CASES idea): output equals the base at init where the method
/// says so, disabled = base exactly, merged = unmerged, unmerge restores the base, save → load is bit-exact, and the
/// trainable parameter count equals the method's formula. A method joins by adding a row to <see cref="Contracts"/>.
/// </summary>
public class MethodContractTests
{
    public static readonly IReadOnlyList<MethodContract> Contracts =
    [
        new("lora", t => new LoraConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        new("lora-rslora-dropout", t => new LoraConfig { Rank = 4, Alpha = 4, UseRsLora = true, Dropout = 0.1, TargetModules = t }, l => 4 * (l.InFeatures + l.OutFeatures)),
        new("lora-pissa", t => new LoraConfig { Rank = 2, Alpha = 4, InitLoraWeights = InitLoraWeights.Pissa, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures), InitTolerance: 1e-5),
        new("lora-olora", t => new LoraConfig { Rank = 2, Alpha = 2, InitLoraWeights = InitLoraWeights.Olora, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures), InitTolerance: 1e-5),
        new("dora", t => new LoraConfig { Rank = 3, Alpha = 6, UseDora = true, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures) + l.OutFeatures, InitTolerance: 1e-6),
        // LoHa: four factors [out, r], [r, in] → 2r(d_in + d_out); rank_pattern "proj" hits stem.proj (4 → 6) only.
        new("loha", t => new LoHaConfig { Rank = 2, Alpha = 4, TargetModules = t }, l => 2 * 2 * (l.InFeatures + l.OutFeatures)),
        new("loha-pattern-dropouts", t => new LoHaConfig { Rank = 2, Alpha = 3, RankDropout = 0.3, ModuleDropout = 0.2, RankPattern = new Dictionary<string, int> { ["proj"] = 3 }, AlphaPattern = new Dictionary<string, double> { ["q_proj"] = 5 }, TargetModules = t },
            l => l.InFeatures == 4 ? 2 * 3 * (4 + 6) : 2 * 2 * (l.InFeatures + l.OutFeatures)),
        // LoKr, by hand: factorization(6) = (2, 3), factorization(4) = (2, 2); with decompose_factor 3: 6 → (3, 2), 4 → (2, 2).
        // r = 2, 6×6: W1 [2, 2] + W2 [3, 3] (2 ≥ 3/2: full) = 13; 4 → 6: W1 [2, 2] + W2 [3, 2] = 10.
        new("lokr", t => new LoKrConfig { Rank = 2, Alpha = 4, TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 13, (4, 6) => 10, _ => throw new InvalidOperationException() }),
        // r = 1, lycoris init: W2 decomposed (1 < 3/2): 6×6: 4 + (3 + 3) = 10; 4 → 6: 4 + (3 + 2) = 9.
        new("lokr-r1-lycoris-init", t => new LoKrConfig { Rank = 1, Alpha = 2, InitWeights = LoKrInit.Lycoris, TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 10, (4, 6) => 9, _ => throw new InvalidOperationException() }),
        // r = 1, decompose_both, factor 3: 6×6: W1 [3,1]+[1,3] = 6 + W2 [2, 2] = 4 → 10; 4 → 6: W1 [3,1]+[1,2] = 5 + W2 [2, 2] = 4 → 9.
        new("lokr-decompose-both", t => new LoKrConfig { Rank = 1, Alpha = 1, DecomposeBoth = true, DecomposeFactor = 3, RankDropout = 0.5, RankDropoutScale = true, TargetModules = t },
            l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 10, (4, 6) => 9, _ => throw new InvalidOperationException() }),
        // MiSS/Bone: r = 4 does not divide d_in = 6 of the 6→6 layers, so the padded-shard path runs; bat needs r | d_in, d_out.
        new("miss", t => new MissConfig { Rank = 4, TargetModules = t }, l => 4 * l.OutFeatures),
        new("miss-bat", t => new MissConfig { Rank = 2, InitWeights = ShardInit.Bat, TargetModules = t }, l => l.OutFeatures / 2 * 2 * 2),
        new("miss-mini-dropout", t => new MissConfig { Rank = 2, InitWeights = ShardInit.Mini, MiniR = 3, Dropout = 0.1, TargetModules = t }, l => 2 * 3),
        new("miss-random-init", t => new MissConfig { Rank = 2, InitWeights = ShardInit.Random, TargetModules = t }, l => 2 * l.OutFeatures, IdentityAtInit: false),
        new("bone", t => new BoneConfig { Rank = 4, TargetModules = t }, l => 4 * l.OutFeatures),
        new("bone-bat", t => new BoneConfig { Rank = 2, InitWeights = ShardInit.Bat, TargetModules = t }, l => l.OutFeatures / 2 * 2 * 2),
        new("vera", t => new VeraConfig { Rank = 4, TargetModules = t }, l => l.OutFeatures + 4),
        new("vera-dropout-unsaved-projections", t => new VeraConfig { Rank = 3, Dropout = 0.1, DInitial = 0.5, SaveProjection = false, TargetModules = t }, l => l.OutFeatures + 3),
        // RandLoRA: n = ⌈d/r⌉ bases, d = min(d_in, d_out); λ [r, n] + γ [n, d] = n·(r + d).
        new("randlora", t => new RandLoraConfig { Rank = 2, Alpha = 4, TargetModules = t }, l => (Math.Min(l.InFeatures, l.OutFeatures) + 1) / 2 * (2 + Math.Min(l.InFeatures, l.OutFeatures))),
        new("randlora-sparse-dropout", t => new RandLoraConfig { Rank = 4, Alpha = 8, Sparse = true, Dropout = 0.1, TargetModules = t }, l => (Math.Min(l.InFeatures, l.OutFeatures) + 3) / 4 * (4 + Math.Min(l.InFeatures, l.OutFeatures))),
        new("randlora-very-sparse-unsaved-bases", t => new RandLoraConfig { Rank = 3, Alpha = 3, VerySparse = true, SaveProjection = false, TargetModules = t }, l => (Math.Min(l.InFeatures, l.OutFeatures) + 2) / 3 * (3 + Math.Min(l.InFeatures, l.OutFeatures))),
        // Hydra: r_p·(d_in + d_out) + 2·r_s·d_out (no branch biases: v_proj has no base bias to merge them into).
        new("hydra", t => new HydraConfig { Rank = 2, SequentialRank = 3, Scale = 0.5, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + 2 * 3 * l.OutFeatures),
        new("hydra-xavier-dropout", t => new HydraConfig { Rank = 1, SequentialRank = 2, Dropout = 0.1, InitWeights = HydraInit.Xavier, TargetModules = t }, l => 1 * (l.InFeatures + l.OutFeatures) + 2 * 2 * l.OutFeatures),
        new("hydra-random-init", t => new HydraConfig { Rank = 2, SequentialRank = 1, InitWeights = HydraInit.Random, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + 2 * 1 * l.OutFeatures, IdentityAtInit: false),
        // The conv-kernel LoRAs on a Linear (a 1×1 kernel): every one is r·(d_in + d_out), + d_out with use_dora.
        new("lora-c", t => new LoraCConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        new("dora-c-dropout", t => new LoraCConfig { Rank = 2, Alpha = 4, UseDora = true, Dropout = 0.1, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + l.OutFeatures),
        new("conv-lora", t => new ConvLoraConfig { Rank = 2, Alpha = 2, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures)),
        new("conv-dora", t => new ConvLoraConfig { Rank = 2, Alpha = 3, UseDora = true, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + l.OutFeatures),
        new("cp-lora", t => new CpLoraConfig { Rank = 3, Alpha = 3, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        new("cp-dora-random-init", t => new CpLoraConfig { Rank = 2, Alpha = 2, UseDora = true, InitLoraWeights = false, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + l.OutFeatures, IdentityAtInit: false),
        // TLoRA, by hand. num_cores 2: 6 → (2, 3), 4 → (2, 2); transform_r 2: cores [1, n1, n1, 2] + [2, n2, n2, 1] = 2n1² + 2n2²;
        // r = 2: residual q²·(o1·i1 + o2·i2). 6×6: 26 + 4·13 = 78; 4 → 6: 16 + 4·(2·2 + 3·2) = 56.
        new("tlora", t => new TLoraConfig { Rank = 2, TransformRank = 2, NumCores = 2, TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 78, (4, 6) => 56, _ => throw new InvalidOperationException() }),
        // Defaults (r 4, transform_r 1, num_cores 3): 6 → (1, 2, 3), 4 → (1, 2, 2). 6×6: 14 + 16·14 = 238; 4 → 6: 9 + 16·(1 + 4 + 6) = 185.
        new("tlora-defaults", t => new TLoraConfig { TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 238, (4, 6) => 185, _ => throw new InvalidOperationException() }),
        new("tlora-random-residual", t => new TLoraConfig { Rank = 1, NumCores = 2, InitWeights = false, TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (6, 6) => 13 + 13, (4, 6) => 8 + 10, _ => throw new InvalidOperationException() }, IdentityAtInit: false),
        // LoRA-XS / LoRA-SB train only R (r×r); B and A are frozen. The official LoRA-XS init (R ~ N(0, 1e-5²)) moves the output slightly.
        new("lora-xs", t => new LoraXsConfig { Rank = 2, Alpha = 4, TargetModules = t }, l => 2 * 2),
        new("lora-xs-official-init-dropout", t => new LoraXsConfig { Rank = 3, InitWeights = false, Dropout = 0.1, TargetModules = t }, l => 3 * 3, InitTolerance: 1e-3),
        // LoRA-SB's real init needs data (calibration, tested in Methods/LoraSb: not the identity); created without it, R = 0.
        new("lora-sb-uncalibrated", t => new LoraSbConfig { Rank = 2, TargetModules = t }, l => 2 * 2),
        new("lora-sb-random-init", t => new LoraSbConfig { Rank = 2, InitWeights = false, TargetModules = t }, l => 2 * 2, IdentityAtInit: false),
        // LoLDU trains r diagonal entries; the delta σ·PL(z − z₀)U is exactly 0 at init.
        new("loldu", t => new LolDuConfig { Rank = 2, Alpha = 2, TargetModules = t }, l => 2),
        // SALT, by hand: 2t + 2(k − t)·r with k = min(d_in, d_out). ratio 0.5, r 2: 4 → 6: k 4, t 2 → 4 + 8 = 12; 6 × 6: t 3 → 6 + 12 = 18.
        new("salt", t => new SaltConfig { Rank = 2, Ratio = 0.5, TargetModules = t }, l => (l.InFeatures, l.OutFeatures) switch { (4, 6) => 12, (6, 6) => 18, _ => throw new InvalidOperationException() }),
        // ratio 0.2, r 3: 4 → 6: t = max(1, 0) = 1 → 2 + 2·3·3 = 20; 6 × 6: t = 1 → 2 + 2·5·3 = 32. X, Y random: the official conv init.
        new("salt-random-init", t => new SaltConfig { Rank = 3, Ratio = 0.2, InitWeights = false, TargetModules = t },
            l => (l.InFeatures, l.OutFeatures) switch { (4, 6) => 20, (6, 6) => 32, _ => throw new InvalidOperationException() }, IdentityAtInit: false),
        // MoLE: experts on v_proj (the only bias-free target, 6 → 6; each block's own MLP group, so it owns the router):
        // K·r·(d_in + d_out) + K·(d_in + 1); the other targets are plain LoRA r·(d_in + d_out). Token routing: no merge.
        new("mole", t => new MoleConfig { Rank = 2, Alpha = 4, NumExperts = 3, ExpertModules = TargetModules.Of("v_proj"), TargetModules = t },
            l => l.Bias is null ? 3 * 2 * (l.InFeatures + l.OutFeatures) + 3 * (l.InFeatures + 1) : 2 * (l.InFeatures + l.OutFeatures), Mergeable: false),
        new("mole-switch", t => new MoleConfig { Rank = 3, Alpha = 3, NumExperts = 2, Routing = MoleConfig.Switch, ExpertModules = TargetModules.Of("v_proj"), TargetModules = t },
            l => l.Bias is null ? 2 * 3 * (l.InFeatures + l.OutFeatures) + 2 * (l.InFeatures + 1) : 3 * (l.InFeatures + l.OutFeatures), Mergeable: false),
        new("mole-dense-dropout", t => new MoleConfig { Rank = 2, Alpha = 2, NumExperts = 4, Routing = MoleConfig.Dense, Dropout = 0.1, ExpertModules = TargetModules.Of("v_proj"), TargetModules = t },
            l => l.Bias is null ? 4 * 2 * (l.InFeatures + l.OutFeatures) + 4 * (l.InFeatures + 1) : 2 * (l.InFeatures + l.OutFeatures), Mergeable: false),
        // GaLore trains a full copy of each target weight (its saving is in the optimizer state, not the parameter count).
        new("galore", t => new GaLoreConfig { Rank = 2, UpdateProjectionGap = 3, TargetModules = t }, l => l.InFeatures * l.OutFeatures),
        // DiffoRA during the search: each candidate's LoRA plus one architecture logit (discretisation is tested in Methods/Diffora).
        new("diffora", t => new PeftSharp.Methods.Diffora.DifforaConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures) + 1),
        new("diffora-dropout-gate-init", t => new PeftSharp.Methods.Diffora.DifforaConfig { Rank = 2, Alpha = 2, Dropout = 0.1, GateInit = -1, UseRsLora = true, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + 1),
        // LoRA-Pro and ALLoRA keep LoRA's factors (they change only the training rule): r·(d_in + d_out).
        new("lorapro", t => new PeftSharp.Methods.LoraPro.LoraProConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        new("lorapro-rslora-dropout-gaussian", t => new PeftSharp.Methods.LoraPro.LoraProConfig { Rank = 2, Alpha = 4, UseRsLora = true, Dropout = 0.1, InitLoraWeights = InitLoraWeights.Gaussian, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures)),
        new("allora", t => new PeftSharp.Methods.AlLora.AlLoraConfig { Rank = 3, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        new("allora-unsquared-first-step", t => new PeftSharp.Methods.AlLora.AlLoraConfig { Rank = 2, Eta = 5, FactorNorm = "unsquared", FactorUpdate = "first_step", TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures)),
        // LoRA-Squeeze at its source rank is LoRA: r·(d_in + d_out) until the first squeeze (saved and reloaded as a plain LoRA).
        new("lora-squeeze", t => new LoraSqueezeConfig { Rank = 4, Alpha = 6, TargetRank = 2, SqueezeSteps = [3], TargetModules = t }, l => 4 * (l.InFeatures + l.OutFeatures)),
        new("lora-squeeze-rslora-dropout", t => new LoraSqueezeConfig { Rank = 3, Alpha = 3, TargetRank = 1, UseRsLora = true, Dropout = 0.1, SqueezeSteps = [1, 2], TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        // SoRA: LoRA factors + a gate of r entries per layer; B = 0 at init (the random gate does not move the output).
        new("sora", t => new PeftSharp.Methods.Sora.SoraConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures) + 3),
        new("sora-soft-dropout", t => new PeftSharp.Methods.Sora.SoraConfig { Rank = 2, Alpha = 4, Dropout = 0.1, ThresholdForm = "soft", TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + 2),
        new("sora-random-init", t => new PeftSharp.Methods.Sora.SoraConfig { Rank = 2, InitLoraWeights = false, TargetModules = t }, l => 2 * (l.InFeatures + l.OutFeatures) + 2, IdentityAtInit: false),
        // DyLoRA: a plain r_max LoRA in parameters; merged and saved at the evaluation rank (the full rank here).
        new("dylora", t => new PeftSharp.Methods.DyLora.DyLoraConfig { Rank = 3, Alpha = 6, TargetModules = t }, l => 3 * (l.InFeatures + l.OutFeatures)),
        // (IA)³: d_out per target, d_in on a feed-forward one (here the "left" branch); 1 at init, so exactly the base.
        new("ia3", t => new PeftSharp.Methods.Ia3.Ia3Config { TargetModules = t, FeedforwardModules = TargetModules.Of() }, l => l.OutFeatures),
        // With "left" feed-forward its vector is d_in long; left is d → d, so the count per layer is still d_out.
        new("ia3-feedforward-left-random-init", t => new PeftSharp.Methods.Ia3.Ia3Config { TargetModules = t, FeedforwardModules = TargetModules.Of("left"), InitIa3Weights = false },
            l => l.OutFeatures, IdentityAtInit: false),
        new("dylora-unfrozen-dropout", t => new PeftSharp.Methods.DyLora.DyLoraConfig { Rank = 4, Alpha = 4, FrozenPrefix = false, Dropout = 0.1, TargetModules = t }, l => 4 * (l.InFeatures + l.OutFeatures)),
    ];

    public static TheoryData<string> Names()
    {
        var d = new TheoryData<string>();
        foreach (var c in Contracts)
        {
            d.Add(c.Name);
        }
        return d;
    }

    private static MethodContract Get(string name) => Contracts.Single(c => c.Name == name);

    private static readonly TargetModules s_targets = TargetModules.Of("q_proj", "v_proj", "left", "proj");

    private static void Randomise(PeftModel peft)
    {
        using var _ = torch.no_grad();
        foreach (var p in peft.TrainableParameters())
        {
            p.add_(torch.randn_like(p) * 0.2);
        }
    }

    [Fact]
    public void Every_registered_method_has_a_contract_row()
    {
        foreach (var m in MethodRegistry.Default.Methods)
        {
            Assert.Contains(Contracts, c => MethodRegistry.Default.ForConfig(c.Config(s_targets)) == m);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Output_at_init_equals_base_where_the_method_says_so(string name)
    {
        var contract = Get(name);
        torch.manual_seed(41);
        var net = new NestedNet();
        net.eval();
        var x = torch.randn(3, 4);
        using var before = net.call(x);
        var peft = PeftModel.Create(net, contract.Config(s_targets));
        using var after = net.call(x);
        if (contract.IdentityAtInit)
        {
            Assert.True(contract.InitTolerance == 0 ? Weights.Exact(after, before) : Weights.MaxAbsDiff(after, before) <= contract.InitTolerance);
        }
        else
        {
            Assert.False(after.allclose(before), $"{name} is documented as not being the identity at init");
        }
        Assert.NotNull(peft);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Disabled_is_base_merged_equals_unmerged_and_unmerge_restores(string name)
    {
        var contract = Get(name);
        torch.manual_seed(42);
        var net = new NestedNet();
        net.eval();
        var x = torch.randn(3, 4);
        var peft = PeftModel.Create(net, contract.Config(s_targets));
        using (var _ = torch.no_grad())
        {
            using var baseOut = DisabledOutput(peft, net, x);
            Randomise(peft);
            using var unmerged = net.call(x);
            Assert.False(unmerged.allclose(baseOut), "randomised adapter must change the output");
            using var disabled = DisabledOutput(peft, net, x);
            Assert.True(Weights.Exact(disabled, baseOut));
            var weights = peft.AdapterLayers().ToDictionary(l => l.Name, l => l.Layer.Base.Weight.detach().clone());
            if (!contract.Mergeable)
            {
                Assert.ThrowsAny<PeftException>(() => peft.Merge());
                return;
            }
            peft.Merge();
            using var merged = net.call(x);
            Assert.True(Weights.MaxAbsDiff(merged, unmerged) <= 1e-5 * Math.Max(1, unmerged.abs().max().item<float>()), $"{name}: merged differs");
            peft.Unmerge();
            foreach (var (layerName, layer) in peft.AdapterLayers())
            {
                var rel = (layer.Base.Weight - weights[layerName]).norm().item<float>() / weights[layerName].norm().item<float>();
                Assert.True(rel <= 1e-6, $"{name}/{layerName}: unmerge left relative error {rel}");
            }
        }
    }

    private static Tensor DisabledOutput(PeftModel peft, NestedNet net, Tensor x)
    {
        using (peft.DisableAdapters())
        {
            return net.call(x);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Save_then_load_is_bit_exact(string name)
    {
        var contract = Get(name);
        torch.manual_seed(43);
        var net = new NestedNet();
        net.eval();
        var x = torch.randn(3, 4);
        var baseState = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var peft = PeftModel.Create(net, contract.Config(s_targets));
        Randomise(peft);
        using var expected = net.call(x);
        var dir = Directory.CreateTempSubdirectory("peftsharp-contract-").FullName;
        try
        {
            PeftAdapterFiles.Save(peft, dir);
            var fresh = new NestedNet();
            using (torch.no_grad())
            {
                foreach (var (n, p) in fresh.named_parameters())
                {
                    p.copy_(baseState[n]);
                }
            }
            fresh.eval();
            var loaded = PeftAdapterFiles.FromPretrained(fresh, dir);
            using var got = fresh.call(x);
            Assert.True(Weights.Exact(got, expected), $"{name}: reloaded output differs by {Weights.MaxAbsDiff(got, expected)}");
            var again = Path.Combine(dir, "again");
            PeftAdapterFiles.Save(loaded, again);
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir, PeftAdapterFiles.WeightsFileName)), File.ReadAllBytes(Path.Combine(again, PeftAdapterFiles.WeightsFileName)));
            Assert.Equal(File.ReadAllText(Path.Combine(dir, PeftAdapterFiles.ConfigFileName)), File.ReadAllText(Path.Combine(again, PeftAdapterFiles.ConfigFileName)));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Trainable_parameter_count_matches_the_formula(string name)
    {
        var contract = Get(name);
        var net = new NestedNet();
        var peft = PeftModel.Create(net, contract.Config(s_targets));
        var expected = peft.AdapterLayers().Sum(l => contract.ExpectedTrainable(l.Layer.Base));
        Assert.Equal(expected, peft.ParameterCounts().Trainable);
    }
}
