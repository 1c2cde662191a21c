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
using PeftSharp.Methods.Salt;

namespace PeftSharp.Core;

/// <summary>The methods PeftSharp ships. One line per method.</summary>
internal static class BuiltinMethods
{
    public static void Register(MethodRegistry registry)
    {
        registry.Add(new LoraMethod(Methods.Dora.DoraVariant.Factory));
        registry.AddPreset(Methods.Dora.DoraVariant.Preset);
        registry.AddPreset(LoraMethod.PissaPreset);
        registry.AddPreset(LoraMethod.OloraPreset);
        registry.Add(new LoHaMethod());
        registry.Add(new LoKrMethod());
        registry.Add(new MissMethod());
        registry.Add(new BoneMethod());
        registry.Add(new VeraMethod());
        registry.Add(new RandLoraMethod());
        registry.Add(new Methods.Hydra.HydraMethod());
        registry.Add(new Methods.LoraC.LoraCMethod());
        registry.AddPreset(Methods.LoraC.LoraCMethod.DoraPreset);
        registry.Add(new Methods.ConvLora.ConvLoraMethod());
        registry.AddPreset(Methods.ConvLora.ConvLoraMethod.DoraPreset);
        registry.Add(new Methods.CpLora.CpLoraMethod());
        registry.AddPreset(Methods.CpLora.CpLoraMethod.DoraPreset);
        registry.Add(new Methods.TLora.TLoraMethod());
        registry.Add(new LoraXsMethod());
        registry.Add(new LoraSbMethod());
        registry.Add(new LolDuMethod());
        registry.Add(new SaltMethod());
        registry.Add(new Methods.Mole.MoleMethod());
        registry.Add(new Methods.GaLore.GaLoreMethod());
        registry.Add(new Methods.Diffora.DifforaMethod());
        registry.Add(new Methods.LoraPro.LoraProMethod());
        registry.Add(new Methods.AlLora.AlLoraMethod());
        registry.Add(new Methods.LoraSqueeze.LoraSqueezeMethod());
        registry.Add(new Methods.Sora.SoraMethod());
        registry.Add(new Methods.DyLora.DyLoraMethod());
        registry.Add(new Methods.Ia3.Ia3Method());
    }
}
